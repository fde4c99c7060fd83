using System.Diagnostics;
using Histo.Slides;
using Histo.Viewer;

namespace Histo.Bench;

/// <summary>
/// <c>serve</c>: Deep Zoom tiles of a 40,000 px synthetic slide. Side by side on the same full-resolution tiles, one thread
/// each: Histo's tile read and JPEG encoding against openslide-python's DeepZoomGenerator with PIL's JPEG (the reference,
/// <c>tools/reference/deepzoom_speed_reference.py</c>), with the ratio; then <c>histo serve</c> over HTTP with 8 clients at
/// once: tiles/s and p50/p99 latency, cold (every tile read from the slide) and cached (the same tiles again).
/// </summary>
static class ServeBenchmark
{
    public static int Run(BenchArgs args)
    {
        int side = (int)args.Number("--side", args.Quick ? 10_000 : 40_000), count = (int)args.Number("--tiles", args.Quick ? 100 : 400);
        BenchEnvironment.EnsureDebianPackages("python3-openslide");
        string dir = Path.Combine(BenchEnvironment.WorkDir, $"serve-{side}");
        string slidePath = Path.Combine(dir, "slides", "slide-001.tif");
        if (!File.Exists(slidePath))
        {
            Console.WriteLine($"Synthesising a {side} x {side} px slide in {dir} ...");
            var synth = BenchEnvironment.Run(BenchEnvironment.Histo, ["synth", "-o", dir, "--slides", "1", "--width", $"{side}",
                "--height", $"{side}", "--mpp", "0.25", "--coarse"]);
            if (synth.Code != 0) throw new InvalidOperationException(synth.Stderr);
        }
        using var slide = WholeSlide.Open(slidePath);
        var pyramid = new DeepZoomPyramid(slide);
        int top = pyramid.LevelCount - 1;
        var (cols, rows) = pyramid.TileGrid(top);
        // Tiles spread over the slide's middle (tissue), full resolution, in a fixed order.
        var random = new Random(1);
        var tiles = Enumerable.Range(0, count).Select(_ => (top, cols / 4 + random.Next(cols / 2), rows / 4 + random.Next(rows / 2)))
            .Distinct().ToList();

        // Warm-up (JIT) on tiles outside the timed ones: the top-left corner.
        for (int i = 0; i < 10; i++) pyramid.ReadTile(top, i, 0).EncodeJpeg(85);
        var clock = Stopwatch.StartNew();
        foreach (var (level, col, row) in tiles) pyramid.ReadTile(level, col, row).EncodeJpeg(85);
        double histo = tiles.Count / clock.Elapsed.TotalSeconds;
        // Where the time goes: the read (OpenSlide and the pixel conversion) and the encoding, each on its own.
        var read = Stopwatch.StartNew();
        var images = tiles.Select(t => pyramid.ReadTile(t.Item1, t.Item2, t.Item3)).ToList();
        double readMs = read.Elapsed.TotalMilliseconds / tiles.Count;
        var encode = Stopwatch.StartNew();
        foreach (var image in images) image.EncodeJpeg(85);
        double encodeMs = encode.Elapsed.TotalMilliseconds / tiles.Count;
        images.Clear();
        string list = Path.Combine(dir, "tiles.txt");
        File.WriteAllLines(list, tiles.Select(t => $"{t.Item1} {t.Item2} {t.Item3}"));
        var py = BenchEnvironment.Run("/bin/sh", ["-c", $"/usr/bin/python3 {Path.Combine(BenchEnvironment.RepoRoot, "tools",
            "reference", "deepzoom_speed_reference.py")} {slidePath} < {list}"]);
        if (py.Code != 0) throw new InvalidOperationException(py.Stderr);
        double reference = double.Parse(py.Stdout.Split('\n').First(l => l.StartsWith("tiles_per_second")).Split(' ')[1],
            System.Globalization.CultureInfo.InvariantCulture);
        Console.WriteLine($"Deep Zoom tiles of a {side} x {side} px slide, {tiles.Count} full-resolution tiles, one thread:");
        Console.WriteLine($"  openslide-python DeepZoomGenerator + PIL JPEG  {reference,8:0.0} tiles/s");
        Console.WriteLine($"  Histo DeepZoomPyramid + Skia JPEG              {histo,8:0.0} tiles/s   ratio {histo / reference:0.00}x");
        Console.WriteLine($"    per tile: read {readMs:0.00} ms (OpenSlide's cache warm from the pass above), JPEG {encodeMs:0.00} ms");

        // The server: a fresh one (empty cache), 8 clients.
        var server = SlideServer.StartAsync(new ServeOptions { Slides = [slidePath], Port = 0 }).GetAwaiter().GetResult();
        try
        {
            using var http = new HttpClient { BaseAddress = server.Address };
            string id = WholeSlide.SlideIdOf(slidePath);
            var urls = tiles.Select(t => $"/dz/{id}_files/{t.Item1}/{t.Item2}_{t.Item3}.jpeg").ToList();
            foreach (var pass in new[] { "cold", "cached" })
            {
                var latencies = new double[urls.Count];
                int next = -1;
                var wall = Stopwatch.StartNew();
                var clients = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
                {
                    for (int i; (i = Interlocked.Increment(ref next)) < urls.Count;)
                    {
                        var one = Stopwatch.StartNew();
                        using var response = await http.GetAsync(urls[i]);
                        response.EnsureSuccessStatusCode();
                        await response.Content.ReadAsByteArrayAsync();
                        latencies[i] = one.Elapsed.TotalMilliseconds;
                    }
                })).ToArray();
                Task.WaitAll(clients);
                double seconds = wall.Elapsed.TotalSeconds;
                Array.Sort(latencies);
                Console.WriteLine($"  histo serve, {pass,-6} 8 clients: {urls.Count / seconds,8:0.0} tiles/s, latency p50 "
                    + $"{latencies[latencies.Length / 2]:0.0} ms, p99 {latencies[(int)(latencies.Length * 0.99)]:0.0} ms");
            }
        }
        finally { server.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        return 0;
    }
}
