using System.Text.Json;
using Histo.Imaging;
using Histo.IO;
using Histo.Slides;
using Histo.Synthesis;

namespace Histo.Tests;

/// <summary>
/// Pen and marker ink is removed where it lies, never in a grown square around it, and eosinophilic tissue is not ink
/// (issue: tissue dropped next to marking dye). Expectations are geometric (where the line was drawn) or the issue's
/// measured regions of a real slide.
/// </summary>
public class InkRemovalTests
{
    const int Width = 1024, Height = 768;
    const int LineY = 384, LineHalfWidth = 6;

    /// <summary>Red marker as it transmits light (the red-pen thumbnail's median ink colour, 198 21 26, over white).</summary>
    static readonly double[] RedMarkerTransmittance = [198 / 255.0, 21 / 255.0, 26 / 255.0];

    /// <summary>
    /// A synthetic slide seen at 4 um/px (a thumbnail's scale) with a red marker line drawn across it: the ink acts as
    /// a filter on the coverslip (Beer-Lambert, optical densities add), with a soft 2-pixel edge.
    /// </summary>
    static (RgbaImage Image, bool[] Tissue) InkedSlide()
    {
        var spec = new SyntheticSlideSpec("inked", "case-inked", 11, Width, Height, 4.0, TissueSubtype.Normal, 0, 0, 0);
        var tissue = new SyntheticTissue(spec);
        var image = new RgbaImage(Width, Height);
        tissue.Render(0, 0, Width, Height, image.Pixels);
        var inTissue = new bool[Width * Height];
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
            {
                int i = y * Width + x;
                inTissue[i] = tissue.InTissue((x + 0.5) * spec.Mpp, (y + 0.5) * spec.Mpp);
                double strength = Math.Clamp((LineHalfWidth + 2 - Math.Abs(y + 0.5 - LineY)) / 2, 0, 1);
                for (int c = 0; c < 3; c++)
                    image.Pixels[4 * i + c] = (byte)Math.Round(image.Pixels[4 * i + c] * Math.Pow(RedMarkerTransmittance[c], strength));
            }
        return (image, inTissue);
    }

    [Fact]
    public void RedLineAcrossTissueIsCutAndTheTissueOnBothSidesKept()
    {
        var (image, inTissue) = InkedSlide();
        var mask = TissueDetector.Detect(image, Width, Height);
        int line = 0, lineKept = 0, above = 0, aboveKept = 0, below = 0, belowKept = 0;
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
            {
                int i = y * Width + x;
                if (!inTissue[i]) continue;
                bool kept = mask.Mask[i] != 0;
                double d = Math.Abs(y + 0.5 - LineY);
                if (d < LineHalfWidth) { line++; if (kept) lineKept++; }
                // Beyond the line's soft edge and the detector's 2-pixel rim, and inside the tissue's outline.
                else if (d > LineHalfWidth + 6 && InsideTissue(inTissue, x, y, 8))
                {
                    if (y < LineY) { above++; if (kept) aboveKept++; } else { below++; if (kept) belowKept++; }
                }
            }
        Assert.True(line > 2000 && above > 20000 && below > 20000, $"the line must cross tissue ({line}, {above}, {below})");
        Assert.True(lineKept == 0, $"{lineKept} of {line} tissue pixels under the ink line were kept");
        Assert.True(aboveKept >= 0.99 * above, $"tissue above the line: kept {aboveKept} of {above}");
        Assert.True(belowKept >= 0.99 * below, $"tissue below the line: kept {belowKept} of {below}");
        // The ink itself is reported, and only along the line.
        int inkOffLine = 0;
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
                if (mask.Ink[y * Width + x] != 0 && Math.Abs(y + 0.5 - LineY) > LineHalfWidth + 6) inkOffLine++;
        Assert.True(inkOffLine <= 0.001 * Width * Height, $"{inkOffLine} pixels away from the line were called ink");
    }

    /// <summary>The pixel and every pixel within <paramref name="r"/> (a square) are tissue in the generator's truth.</summary>
    static bool InsideTissue(bool[] inTissue, int x, int y, int r)
    {
        for (int dy = -r; dy <= r; dy += r)
            for (int dx = -r; dx <= r; dx += r)
            {
                int xx = x + dx, yy = y + dy;
                if (xx < 0 || yy < 0 || xx >= Width || yy >= Height || !inTissue[yy * Width + xx]) return false;
            }
        return true;
    }

    [Fact]
    public void Cli_KeepInkReportsInkWithoutCuttingIt()
    {
        using var dir = new TempDir();
        var (image, _) = InkedSlide();
        string slide = dir["inked.tif"];
        using (var writer = new PyramidTiffWriter(slide, Width, Height, 4.0, "inked synthetic slide"))
        {
            for (int y0 = 0; y0 < Height; y0 += writer.TileSize)
            {
                int rows = Math.Min(writer.TileSize, Height - y0);
                var strip = new RgbaImage(Width, rows);
                image.Pixels.AsSpan(4 * y0 * Width, 4 * rows * Width).CopyTo(strip.Pixels);
                writer.WriteLevel0Rows(strip);
            }
            writer.Finish();
        }
        var cut = Cli.Run("tissue", slide, "-o", dir["cut"]);
        Assert.True(cut.Code == 0, cut.Stderr);
        var kept = Cli.Run("tissue", slide, "-o", dir["kept"], "--keep-ink");
        Assert.True(kept.Code == 0, kept.Stderr);
        foreach (var output in new[] { "cut", "kept" })
        {
            using var geo = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir[output], "inked.tissue.geojson")));
            var classes = geo.RootElement.GetProperty("features").EnumerateArray()
                .Select(f => f.GetProperty("properties").GetProperty("classification").GetProperty("name").GetString()).ToList();
            Assert.Contains("Tissue", classes);
            Assert.Contains("Ink", classes);
        }
        // The mask PNG along the line's centre, in the middle third of the slide where the line crosses tissue.
        int KeptOnLine(string output)
        {
            var m = RgbaImage.Load(Path.Combine(dir[output], "inked.mask.png"));
            int y = (int)(LineY * (double)m.Height / Height), count = 0;
            for (int x = m.Width / 3; x < 2 * m.Width / 3; x++) if (m.Pixels[4 * (y * m.Width + x)] != 0) count++;
            return count;
        }
        Assert.Equal(0, KeptOnLine("cut"));
        Assert.True(KeptOnLine("kept") > 0, "--keep-ink must leave the tissue under the ink in the mask");
        Assert.Contains("ink", cut.Stdout);
    }

    [Fact]
    [Trait("Category", "SharedData")]
    public void SharedData_FrozenSectionKeepsItsInkedMarginAndEosinophilicTumour()
    {
        using var slide = WholeSlide.Open(SharedData.Path_("slides", "tcga-cr-7395-01a-01-ts1.svs"));
        var mask = TissueDetector.Detect(slide);
        // "Stained": OpenCV saturation above 40 (glass stays below 25), not unmistakable ink (vivid green or blue, or
        // pure red with blue no higher than green).
        bool Stained(int i)
        {
            byte[] p = mask.Thumbnail.Pixels;
            int r = p[4 * i], g = p[4 * i + 1], b = p[4 * i + 2];
            return TissueDetectionTests.Saturation(r, g, b) > 40 && !TissueDetectionTests.UnmistakableInk(r, g, b);
        }
        (int Stained, int Kept) Count(double x0, double y0, double x1, double y1)
        {
            int stained = 0, kept = 0;
            for (int y = (int)(y0 / mask.ScaleY); y < Math.Min(mask.Height, (int)(y1 / mask.ScaleY)); y++)
                for (int x = (int)(x0 / mask.ScaleX); x < Math.Min(mask.Width, (int)(x1 / mask.ScaleX)); x++)
                {
                    int i = y * mask.Width + x;
                    if (!Stained(i)) continue;
                    stained++;
                    if (mask.Mask[i] != 0) kept++;
                }
            return (stained, kept);
        }
        var whole = Count(0, 0, slide.Width, slide.Height);
        Assert.True(whole.Kept >= 0.995 * whole.Stained, $"kept {whole.Kept} of {whole.Stained} stained pixels");
        // The two regions (level-0 pixels): the crescent along the lower edge and the square notch.
        foreach (var (x0, y0, x1, y1) in new[] { (3330.0, 3071.0, 4228.0, 3564.0), (2672.0, 3249.0, 2963.0, 3442.0) })
        {
            var region = Count(x0, y0, x1, y1);
            Assert.True(region.Stained > 1000 && region.Kept >= 0.99 * region.Stained,
                $"region {x0},{y0}-{x1},{y1}: kept {region.Kept} of {region.Stained} stained pixels");
        }
    }
}
