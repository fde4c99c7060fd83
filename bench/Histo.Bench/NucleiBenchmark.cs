using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Histo.Imaging;
using Histo.Nuclei;
using Histo.Slides;
using Histo.Synthesis;

namespace Histo.Bench;

/// <summary>
/// The training-free nucleus detector, Histo versus the Python reference of the same recipe
/// (tools/reference/nuclei_baseline_reference.py: SciPy ndimage + scikit-image's watershed) on the same 1024 px tiles of a
/// synthetic slide at 0.25 um/px, detection only, one core each; then `histo nuclei` end to end on the whole slide and on a
/// larger one: nuclei/s, tiles/s and peak memory.
/// </summary>
static class NucleiBenchmark
{
    const double Mpp = 0.25;
    const int Tile = 1024;

    public static int Run(bool quick)
    {
        Directory.CreateDirectory(BenchEnvironment.WorkDir);
        BenchEnvironment.EnsureDebianPackages("python3-scipy", "python3-skimage", "python3-pil", "time");
        if (!File.Exists(BenchEnvironment.Histo)) throw new InvalidOperationException("build first: dotnet build -c Release");
        int side = quick ? 4096 : 8192, tiles = quick ? 4 : 12;
        string slidePath = Synthesise(side);

        // ---- the same tiles, as lossless PNGs, for both sides ----
        string tileDir = Path.Combine(BenchEnvironment.WorkDir, $"nuclei-tiles-{side}");
        Directory.CreateDirectory(tileDir);
        var paths = new List<string>();
        using (var slide = WholeSlide.Open(slidePath))
        {
            var (coords, _) = Tiler.Tile(slide, new TilingOptions { PatchSize = Tile, Overlap = 64, TargetMpp = Mpp, MinTissue = 0.5 });
            for (int k = 0; k < Math.Min(tiles, coords.Count); k++)
            {
                string path = Path.Combine(tileDir, $"tile-{k:00}.png");
                Tiler.ReadPatch(slide, coords, coords.Coords[k, 0], coords.Coords[k, 1]).Save(path);
                paths.Add(path);
            }
        }
        var images = paths.Select(RgbaImage.Load).ToList();
        var settings = new NucleusDetectorSettings();
        TorchSharp.torch.set_num_threads(1);
        NucleusDetector.Detect(images[0], Mpp, settings); // warm-up (JIT)
        Profile(images[0]);
        var clock = Stopwatch.StartNew();
        long histoNuclei = images.Sum(image => (long)NucleusDetector.Detect(image, Mpp, settings).Count);
        double histoSeconds = clock.Elapsed.TotalSeconds;

        string script = Path.Combine(BenchEnvironment.RepoRoot, "tools", "reference", "nuclei_baseline_reference.py");
        var py = BenchEnvironment.Run("/usr/bin/python3", [script, "--time", Mpp.ToString(CultureInfo.InvariantCulture), .. paths],
            ("OMP_NUM_THREADS", "1"));
        if (py.Code != 0) throw new InvalidOperationException("reference failed: " + py.Stderr);
        var result = JsonDocument.Parse(py.Stdout.Trim().Split('\n')[^1]).RootElement;
        double pySeconds = result.GetProperty("seconds").GetDouble();
        long pyNuclei = result.GetProperty("nuclei").GetInt64();

        Console.WriteLine();
        Console.WriteLine($"Nucleus detection on {images.Count} tiles of {Tile} px at {Mpp} um/px (a synthetic slide), one thread each:");
        Console.WriteLine($"  {"",-40} {"tiles/s",8} {"nuclei/s",9} {"nuclei",7}");
        Row("Python reference (SciPy, scikit-image)", images.Count / pySeconds, pyNuclei / pySeconds, pyNuclei);
        Row("Histo (NucleusDetector)", images.Count / histoSeconds, histoNuclei / histoSeconds, histoNuclei);
        Console.WriteLine($"  ratio Histo / reference: {pySeconds / histoSeconds:0.00}x");

        // ---- histo nuclei end to end: whole slides, peak memory ----
        var sides = quick ? new[] { side } : new[] { side, 20_000 };
        Console.WriteLine();
        Console.WriteLine("histo nuclei SLIDE --mpp 0.25 (tiles of 1024 px, overlap 64; reading, detection, GeoJSON and CSV):");
        foreach (int s in sides)
        {
            string path = s == side ? slidePath : Synthesise(s);
            string outDir = Path.Combine(BenchEnvironment.WorkDir, $"nuclei-out-{s}");
            if (Directory.Exists(outDir)) Directory.Delete(outDir, true);
            var run = BenchEnvironment.PeakMemory(BenchEnvironment.Histo, "nuclei", path, "--mpp", "0.25", "-o", outDir);
            long nuclei = File.ReadLines(Path.Combine(outDir, "slide-001.csv")).LongCount() - 1;
            Console.WriteLine($"  {s}x{s * 3 / 4} px: {nuclei} nuclei in {run.Seconds:0} s ({nuclei / run.Seconds:0} nuclei/s), "
                + $"peak {run.PeakMiB:0} MiB");
        }
        return 0;
    }

    /// <summary>The detector's steps timed one by one on one tile.</summary>
    static void Profile(RgbaImage image)
    {
        var clock = Stopwatch.StartNew();
        NucleusDetector.Detect(image, Mpp, new NucleusDetectorSettings(), step =>
        {
            Console.WriteLine($"  {step,-26} {clock.Elapsed.TotalMilliseconds,7:0} ms");
            clock.Restart();
        });
    }

    static string Synthesise(int side)
    {
        string dir = Path.Combine(BenchEnvironment.WorkDir, $"nuclei-slide-{side}");
        string path = Path.Combine(dir, "slides", "slide-001.tif");
        if (File.Exists(path)) return path;
        Console.WriteLine($"Synthesising a {side}x{side * 3 / 4} px slide at {Mpp} mpp in {dir} ...");
        SyntheticCohort.Generate(new SyntheticCohortOptions { Slides = 1, Seed = 5, Width = side, Height = side * 3 / 4, Mpp = Mpp }, dir);
        return path;
    }

    static void Row(string name, double tilesPerSecond, double nucleiPerSecond, long nuclei) =>
        Console.WriteLine($"  {name,-40} {tilesPerSecond,8:0.00} {nucleiPerSecond,9:0} {nuclei,7}");
}
