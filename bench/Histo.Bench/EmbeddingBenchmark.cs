using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Histo.IO;
using Histo.Models;
using Histo.Pipeline;
using Histo.Slides;
using Histo.Synthesis;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Patch encoding: ResNet-18 at 224 px, batch 64. (1) Encoder throughput, Histo (TorchSharp) versus Debian's
/// PyTorch running the same architecture and weights on the same batch, with the ratio and the fraction of
/// this machine's measured fp32 GEMM throughput; bf16 speed and agreement. (2) The whole `histo embed` on
/// synthetic slides: patches/s, the split between reading/decoding and encoding, and peak memory.
/// </summary>
static class EmbeddingBenchmark
{
    /// <summary>Multiply-accumulates of torchvision's ResNet-18 at 224 x 224 (1.814 G), as FLOPs (x2).</summary>
    const double ResNet18Flops = 2 * 1.814e9;

    public static int Run(bool quick)
    {
        Directory.CreateDirectory(BenchEnvironment.WorkDir);
        BenchEnvironment.EnsureDebianPackages("python3-torch", "python3-torchvision", "python3-numpy", "time");
        int threads = Environment.ProcessorCount, batch = 64, iterations = quick ? 2 : 5;
        set_num_threads(threads);

        // ---- GEMM ceiling: fp32 2048 x 2048 matmul ----
        double gemm;
        using (var a = randn(2048, 2048)) using (var b = randn(2048, 2048))
        {
            using (var w = matmul(a, b)) { }
            var c = Stopwatch.StartNew();
            int reps = 10;
            for (int i = 0; i < reps; i++) using (var r = matmul(a, b)) { }
            gemm = reps * 2.0 * 2048 * 2048 * 2048 / c.Elapsed.TotalSeconds / 1e9;
        }
        Console.WriteLine($"fp32 GEMM 2048^3 (TorchSharp, {threads} threads): {gemm:0} GFLOP/s");

        // ---- Encoder only: same weights, same input ----
        manual_seed(0);
        using var resnet = new ResNet(ResNetConfig.ResNet18);
        resnet.eval();
        string weights = Path.Combine(BenchEnvironment.WorkDir, "resnet18-bench.pt");
        TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(weights, resnet.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
        using var input = randn(batch, 3, 224, 224);
        string npy = Path.Combine(BenchEnvironment.WorkDir, "resnet18-bench-input.npy");
        Npy.WriteFloat32(npy, input.data<float>().ToArray(), [batch, 3, 224, 224]);
        double histoFp32 = ImagesPerSecond(resnet, input, iterations, 16, out var fp32Features);
        double histoFp32Whole = ImagesPerSecond(resnet, input, iterations, batch, out _);
        Console.WriteLine($"Histo ResNet-18 fp32: {histoFp32:0.0} images/s");
        JsonElement PyTorch(int chunk)
        {
            var py = BenchEnvironment.Run("/usr/bin/python3", [Path.Combine(BenchEnvironment.RepoRoot, "tools", "reference", "encoder_speed_reference.py"), weights, npy, $"{threads}", $"{iterations}", $"{chunk}"]);
            if (py.Code != 0) throw new InvalidOperationException("PyTorch reference failed: " + py.Stderr);
            return JsonDocument.Parse(py.Stdout.Trim().Split('\n')[^1]).RootElement;
        }
        var pyResult = PyTorch(batch);
        double pyIps = pyResult.GetProperty("images_per_second").GetDouble();
        double pyIps16 = PyTorch(16).GetProperty("images_per_second").GetDouble();
        var pyFirst = pyResult.GetProperty("first").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        double agreement = Cosine(fp32Features[0], pyFirst);

        using var bf16Model = new ResNet(ResNetConfig.ResNet18);
        bf16Model.load_state_dict(resnet.state_dict());
        bf16Model.eval();
        bf16Model.to(ScalarType.BFloat16);
        using var bf16Input = input.to_type(ScalarType.BFloat16);
        double histoBf16 = ImagesPerSecond(bf16Model, bf16Input, iterations, 16, out var bf16Features);
        double bf16Cosine = Enumerable.Range(0, batch).Average(i => Cosine(fp32Features[i], bf16Features[i]));
        double bf16Min = Enumerable.Range(0, batch).Min(i => Cosine(fp32Features[i], bf16Features[i]));

        Console.WriteLine();
        Console.WriteLine($"ResNet-18 encoder, 224 px, batch {batch}, {threads} threads:");
        Console.WriteLine($"  PyTorch {pyResult.GetProperty("torch").GetString()} (Debian), one pass of 64   {pyIps,8:0.0} images/s   (Debian's build: OpenBLAS for GEMM, oneDNN for convolutions)");
        Console.WriteLine($"  PyTorch, in chunks of 16                 {pyIps16,8:0.0} images/s");
        Console.WriteLine($"  Histo fp32, one pass of 64               {histoFp32Whole,8:0.0} images/s   ratio {histoFp32Whole / pyIps:0.00}x");
        Console.WriteLine($"  Histo fp32, chunks of 16 (histo embed)   {histoFp32,8:0.0} images/s   ratio {histoFp32 / pyIps:0.00}x (vs PyTorch chunked {histoFp32 / pyIps16:0.00}x); {histoFp32 * ResNet18Flops / 1e9:0} GFLOP/s = {histoFp32 * ResNet18Flops / 1e9 / gemm:P0} of measured GEMM");
        Console.WriteLine($"  Histo bf16, chunks of 16 (--precision bf16) {histoBf16,5:0.0} images/s   ratio {histoBf16 / pyIps:0.00}x; {histoBf16 / histoFp32:0.00}x fp32; cosine to fp32 features mean {bf16Cosine:F5}, min {bf16Min:F5}");
        Console.WriteLine($"  feature agreement Histo fp32 vs PyTorch (first image): cosine {agreement:F6}");

        // ---- The whole command on slides: reading vs encoding, peak memory ----
        int slides = quick ? 2 : 4;
        string cohort = Path.Combine(BenchEnvironment.WorkDir, $"embed-cohort-{slides}");
        SyntheticCohort.Generate(new SyntheticCohortOptions { Slides = slides, Seed = 21, Width = 6144, Height = 4608 }, cohort);
        string tiles = Path.Combine(cohort, "tiles");
        TilingJob.Run(new TilingJobOptions { Slides = [Path.Combine(cohort, "slides")], OutputDir = tiles, Tiling = new TilingOptions { TargetMpp = 0.5, PatchSize = 224 } });
        using var encoder = EncoderRegistry.Create(EncoderRegistry.Default);
        double read = 0, encode = 0, wall = 0;
        long patches = 0;
        foreach (var file in Directory.GetFiles(Path.Combine(cohort, "slides"), "*.tif").Order())
        {
            using var slide = WholeSlide.Open(file);
            var coords = PatchCoordinates.Read(EmbeddingJob.CoordsPath(tiles, slide.SlideId));
            var clock = Stopwatch.StartNew();
            EmbeddingJob.EmbedSlide(slide, coords, encoder, new EmbeddingJobOptions { Slides = [], CoordsDir = tiles, OutputDir = "" }, null, out var t);
            wall += clock.Elapsed.TotalSeconds;
            read += t.ReadSeconds; encode += t.EncodeSeconds; patches += t.Patches;
        }
        string outDir = Path.Combine(cohort, "embed-run");
        if (Directory.Exists(outDir)) Directory.Delete(outDir, true);
        var peak = BenchEnvironment.PeakMemory(BenchEnvironment.Histo, "embed", Path.Combine(cohort, "slides"), "--coords", tiles, "-o", outDir);
        Console.WriteLine();
        Console.WriteLine($"histo embed (resnet18-imagenet) on {slides} synthetic slides, {patches} patches of 224 px at 0.5 mpp:");
        Console.WriteLine($"  {patches / wall:0.0} patches/s end to end; reading+decoding+resizing {read:0.0} s (on {Math.Max(1, threads / 2)} reader thread(s), overlapped), encoding {encode:0.0} s of {wall:0.0} s wall");
        Console.WriteLine($"  reading is {(read < encode ? "not " : "")}the bottleneck (reader alone: {patches / read:0} patches/s, encoder alone: {patches / encode:0} patches/s)");
        Console.WriteLine($"  peak memory of the whole `histo embed` process: {peak.PeakMiB:0} MiB ({peak.Seconds:0.0} s including start-up and model load)");
        return 0;
    }

    internal static double ImagesPerSecond(nn.Module<Tensor, Tensor> model, Tensor input, int iterations, int chunk, out float[][] features)
    {
        using var _ = inference_mode();
        Tensor Forward() => cat(Enumerable.Range(0, (int)((input.shape[0] + chunk - 1) / chunk))
            .Select(c => model.forward(input.narrow(0, c * chunk, Math.Min(chunk, input.shape[0] - c * chunk)))).ToList(), 0);
        using (var warm = Forward()) { }
        var clock = Stopwatch.StartNew();
        Tensor? last = null;
        for (int i = 0; i < iterations; i++) { last?.Dispose(); last = Forward(); }
        double ips = iterations * input.shape[0] / clock.Elapsed.TotalSeconds;
        using var f = last!.to_type(ScalarType.Float32);
        var flat = f.data<float>().ToArray();
        int d = (int)f.shape[1];
        features = Enumerable.Range(0, (int)f.shape[0]).Select(i => flat[(i * d)..((i + 1) * d)]).ToArray();
        last.Dispose();
        return ips;
    }

    internal static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }
}

/// <summary>Writes NumPy .npy files (format 1.0, little-endian float32, C order).</summary>
static class Npy
{
    public static void WriteFloat32(string path, float[] data, long[] shape) =>
        Write(path, "<f4", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()), shape);

    public static void WriteInt64(string path, long[] data, long[] shape) =>
        Write(path, "<i8", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()), shape);

    static void Write(string path, string descr, ReadOnlySpan<byte> bytes, long[] shape)
    {
        string header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({string.Join(", ", shape)}{(shape.Length == 1 ? "," : "")}), }}";
        int total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
        using var f = File.Create(path);
        f.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        f.Write(BitConverter.GetBytes((ushort)header.Length));
        f.Write(System.Text.Encoding.ASCII.GetBytes(header));
        f.Write(bytes);
    }
}
