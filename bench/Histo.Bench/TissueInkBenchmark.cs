using Histo.Imaging;
using Histo.Slides;

namespace Histo.Bench;

/// <summary>
/// Measures tissue detection's ink rule on the shared real images (issue: tissue dropped next to marking dye): for each
/// slide and thumbnail, the share of stained pixels kept and of unmistakable ink kept; for each NCT-CRC tile, the share
/// of pixels Histo takes for ink. Writes every overlay to look at. Rules of the measuring stick, independent of Histo's:
/// "stained" = OpenCV saturation above 40 (glass stays below 25) and not unmistakable ink; "unmistakable ink" = vivid
/// green/blue, or pure red with blue no higher than green and green below 60 (the tissue tests' rule).
/// </summary>
static class TissueInkBenchmark
{
    public static int Run(BenchArgs args)
    {
        string data = Environment.GetEnvironmentVariable("HISTO_SHARED_DATA")
            ?? Path.Combine(BenchEnvironment.RepoRoot, "..", "shared", "data");
        string outDir = args.String("--out") ?? Path.Combine(BenchEnvironment.WorkDir, "tissue-ink");
        Directory.CreateDirectory(outDir);
        var options = new TissueDetectionOptions();
        Console.WriteLine($"{"image",-34} {"tissue",7} {"stained",9} {"kept",7} {"ink px",8} {"ink kept",8} {"Histo ink",9}");
        foreach (var path in Directory.GetFiles(Path.Combine(data, "slides"), "*.svs").Order())
        {
            using var slide = WholeSlide.Open(path);
            Report(slide.SlideId, TissueDetector.Detect(slide, options), outDir);
        }
        var images = Directory.GetFiles(Path.Combine(data, "thumbnails"), "*.png").Order()
            .Concat(Directory.GetFiles(Path.Combine(data, "tissue-tiles"), "*pen*.png").Order());
        foreach (var path in images)
        {
            var image = RgbaImage.Load(path);
            Report(Path.GetFileNameWithoutExtension(path), TissueDetector.Detect(image, image.Width, image.Height, options), outDir);
        }
        Console.WriteLine();
        Console.WriteLine($"{"NCT-CRC tile",-34} {"ink-coloured",12} {"certain ink",11} {"Histo ink",9}");
        foreach (var path in Directory.GetFiles(Path.Combine(data, "nct-crc-samples"), "*.tif").Order())
        {
            var image = RgbaImage.Load(path);
            var mask = TissueDetector.Detect(image, image.Width, image.Height, options);
            int coloured = 0, certain = 0, n = image.Width * image.Height;
            for (int i = 0; i < n; i++)
            {
                var (r, g, b, s) = Pixel(image, i);
                if (TissueDetector.IsInkColoured(r, g, b, s)) coloured++;
                if (TissueDetector.IsCertainInk(r, g, b, s, options.RedInkMaxHaematoxylinShare)) certain++;
            }
            Console.WriteLine($"{Path.GetFileName(path),-34} {coloured / (double)n,12:P2} {certain / (double)n,11:P2} "
                + $"{mask.InkFraction,9:P2}");
        }
        Console.WriteLine($"overlays in {outDir}");
        return 0;
    }

    static void Report(string name, TissueMask mask, string outDir)
    {
        int stained = 0, stainedKept = 0, ink = 0, inkKept = 0;
        for (int i = 0; i < mask.Mask.Length; i++)
        {
            var (r, g, b, s) = Pixel(mask.Thumbnail, i);
            bool kept = mask.Mask[i] != 0;
            if (UnmistakableInk(r, g, b, s)) { ink++; if (kept) inkKept++; }
            else if (s > 40) { stained++; if (kept) stainedKept++; }
        }
        Console.WriteLine($"{name,-34} {mask.TissueFraction,7:P1} {stained,9} {stainedKept / (double)stained,7:P2} {ink,8} "
            + $"{(ink == 0 ? 0 : inkKept / (double)ink),8:P2} {mask.InkFraction,9:P2}");
        mask.Overlay().Save(Path.Combine(outDir, name + ".overlay.png"));
    }

    static (int R, int G, int B, int S) Pixel(RgbaImage image, int i)
    {
        int r = image.Pixels[4 * i], g = image.Pixels[4 * i + 1], b = image.Pixels[4 * i + 2];
        int max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b));
        return (r, g, b, max == 0 ? 0 : 255 * (max - min) / max);
    }

    static bool UnmistakableInk(int r, int g, int b, int s)
    {
        double hue = TissueDetector.Hue(r, g, b);
        return s > 100 && (hue is >= 90 and < 230 || ((hue >= 350 || hue < 15) && b <= g + 10 && g < 60));
    }
}
