using System.Security.Cryptography;
using Histo.Imaging;
using Histo.Slides;
using Histo.Synthesis;

namespace Histo.Tests;

public class SyntheticCohortTests
{
    [Fact]
    public void PlanIsDeterministicBalancedAndGroupsSlidesIntoCases()
    {
        var options = new SyntheticCohortOptions { Slides = 30, Seed = 3 };
        var a = SyntheticCohort.Plan(options);
        var b = SyntheticCohort.Plan(options);
        Assert.Equal(a, b);
        Assert.NotEqual(a, SyntheticCohort.Plan(options with { Seed = 4 }));
        Assert.Equal(30, a.Count);
        Assert.All(Enum.GetValues<TissueSubtype>(), s => Assert.InRange(a.Count(x => x.Subtype == s), 6, 14));
        Assert.Contains(a.GroupBy(s => s.CaseId), g => g.Count() > 1);
        // One case, one diagnosis and grade.
        Assert.All(a.GroupBy(s => s.CaseId), g => Assert.Single(g.Select(s => (s.Subtype, s.Grade)).Distinct()));
        Assert.All(a, s => Assert.Equal(s.Subtype == TissueSubtype.Normal, s.Grade == 0));
    }

    [Fact]
    public void GradeGrowsWithBurdenAndAtypia()
    {
        Assert.Equal(1, SyntheticCohort.GradeOf(0.1, 0.0));
        Assert.Equal(3, SyntheticCohort.GradeOf(0.6, 1.0));
        Assert.True(SyntheticCohort.GradeOf(0.35, 0.5) is 2);
    }

    [Fact]
    public void SameSeedWritesIdenticalSlidesAndMasks()
    {
        using var dir = new TempDir();
        var spec = SyntheticCohort.Plan(new SyntheticCohortOptions { Slides = 3, Seed = 5, Width = 1024, Height = 768 })[0];
        Directory.CreateDirectory(dir["a"]);
        Directory.CreateDirectory(dir["b"]);
        SyntheticCohort.WriteSlide(spec, dir["a"]);
        SyntheticCohort.WriteSlide(spec, dir["b"]);
        foreach (string ext in new[] { ".tif", ".tumor-mask.png", ".tissue-mask.png", ".json" })
            Assert.Equal(Sha(dir[$"a/{spec.SlideId}{ext}"]), Sha(dir[$"b/{spec.SlideId}{ext}"]));
    }

    static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void CohortHasClamLabelsAndTumourInsideTissue()
    {
        using var dir = new TempDir();
        var specs = SyntheticCohort.Generate(new SyntheticCohortOptions { Slides = 3, Seed = 1, Width = 1024, Height = 768 }, dir.Path);
        var lines = File.ReadAllLines(dir["labels.csv"]);
        Assert.Equal("case_id,slide_id,label,grade", lines[0]);
        Assert.Equal(specs.Count + 1, lines.Length);
        foreach (var spec in specs)
        {
            var tumour = RgbaImage.Load(dir[$"slides/{spec.SlideId}.tumor-mask.png"]);
            var tissue = RgbaImage.Load(dir[$"slides/{spec.SlideId}.tissue-mask.png"]);
            int tumourPixels = 0, outside = 0;
            for (int i = 0; i < tumour.Pixels.Length; i += 4)
            {
                if (tumour.Pixels[i] > 127) { tumourPixels++; if (tissue.Pixels[i] < 128) outside++; }
            }
            Assert.Equal(0, outside);
            Assert.Equal(spec.Subtype != TissueSubtype.Normal, tumourPixels > 0);
        }
        // A rerun keeps finished slides (same bytes, same time stamp).
        var stamp = File.GetLastWriteTimeUtc(dir[$"slides/{specs[0].SlideId}.tif"]);
        SyntheticCohort.Generate(new SyntheticCohortOptions { Slides = 3, Seed = 1, Width = 1024, Height = 768 }, dir.Path);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(dir[$"slides/{specs[0].SlideId}.tif"]));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PyramidTiffRoundTripsThroughOpenSlide(bool bigTiff)
    {
        // Slides over 4 GiB uncompressed are written as BigTIFF; forced here on a small image to keep the test quick.
        using var dir = new TempDir();
        string path = dir["gradient.tif"];
        using (var writer = new Histo.IO.PyramidTiffWriter(path, 1500, 1100, 0.5, "test", bigTiff: bigTiff))
        {
            for (int y0 = 0; y0 < 1100; y0 += 256)
            {
                var strip = new RgbaImage(1500, Math.Min(256, 1100 - y0));
                for (int y = 0; y < strip.Height; y++)
                    for (int x = 0; x < 1500; x++)
                    {
                        int o = (y * 1500 + x) * 4;
                        strip.Pixels[o] = (byte)(x / 6); strip.Pixels[o + 1] = (byte)((y0 + y) / 5); strip.Pixels[o + 2] = 128; strip.Pixels[o + 3] = 255;
                    }
                writer.WriteLevel0Rows(strip);
            }
            writer.Finish();
        }
        Assert.Equal(bigTiff ? 43 : 42, File.ReadAllBytes(path)[2]);
        using var slide = WholeSlide.Open(path);
        Assert.Equal([(1500L, 1100L), (750L, 550L), (375L, 275L)], slide.Levels.Select(l => (l.Width, l.Height)));
        Assert.Equal(0.5, slide.Mpp!.Value.X, 6);
        foreach (var (x, y) in new[] { (10, 10), (700, 500), (1490, 1090) })
        {
            var p = slide.ReadRegion(x, y, 0, 1, 1).Pixels;
            Assert.InRange(p[0], x / 6 - 4, x / 6 + 4); // JPEG quality 90 keeps a smooth gradient within a few levels
            Assert.InRange(p[1], y / 5 - 4, y / 5 + 4);
        }
        var coarse = slide.ReadRegion(700, 500, 1, 1, 1).Pixels;
        Assert.InRange(coarse[0], 700 / 6 - 5, 700 / 6 + 5);
    }
}
