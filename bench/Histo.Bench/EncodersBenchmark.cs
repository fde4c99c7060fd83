using TorchSharp;
using System.Diagnostics;
using System.Text.Json;
using Histo.Models;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Encoder throughput, Histo against PyTorch in its best configuration on the same weights and input, in one run: ResNet-18
/// (torchvision layout, 224 px) and UNI's ViT-L/16 at full size, fp32 and bf16, images/s with the ratio to PyTorch's fastest
/// mode of that precision (fp32, fp32 channels-last, bf16 autocast, bf16 autocast channels-last) and the fraction of this
/// machine's measured GEMM peak in that precision; the cosine of bf16 to fp32 features; and the full-size UNI and UNI2-h
/// features of Histo against PyTorch's (tools/reference/encoder_speed_reference.py, timm-layout modules).
/// </summary>
static class EncodersBenchmark
{
    /// <summary>Multiply-accumulates of torchvision's ResNet-18 at 224 px as FLOPs (x2): 1.814 G.</summary>
    const double ResNet18Flops = 2 * 1.814e9;

    /// <summary>A ViT's FLOPs per image at its input size, from its configuration: per token and block the qkv and output
    /// projections (4 D^2), the MLP (D H + H' D) and the attention products (2 N D), plus the patch projection. ViT-L/16 at
    /// 224 px gives 61.5 GMACs (timm lists 61.6).</summary>
    static double VitFlops(ViTConfig c)
    {
        double d = c.EmbedDim, h = c.MlpHidden, grid = c.ImageSize / c.PatchSize, patches = grid * grid;
        double tokens = patches + c.PrefixTokens;
        double mlp = d * h + (c.Mlp == ViTMlp.SwiGluPacked ? h / 2 : h) * d;
        return 2 * (tokens * c.Depth * (4 * d * d + mlp + 2 * tokens * d) + patches * 3 * c.PatchSize * c.PatchSize * d);
    }

    public static int Run(bool quick)
    {
        Directory.CreateDirectory(BenchEnvironment.WorkDir);
        BenchEnvironment.EnsureDebianPackages("python3-torch", "python3-torchvision", "python3-numpy");
        int threads = Environment.ProcessorCount;
        set_num_threads(threads);
        Console.WriteLine($"CPU bf16 instructions (AVX-512-BF16 or AMX): {(ComputePrecision.CpuHasBf16 ? "yes" : "no, bf16 is emulated")}");
        // Without bf16 instructions a bf16 GEMM is emulated (measured here: under 1 GFLOP/s), and bf16 networks would take hours:
        // the bf16 rows run only where the CPU has them, which is also when `--precision auto` picks bf16.
        bool bf16 = ComputePrecision.CpuHasBf16 || Environment.GetEnvironmentVariable("HISTO_BENCH_BF16") == "1";
        double gemm32 = Gemm(ScalarType.Float32), gemm16 = Gemm(ScalarType.BFloat16, bf16 ? 2048 : 256);
        Console.WriteLine($"GEMM (TorchSharp, {threads} threads): fp32 2048^3 {gemm32:0} GFLOP/s, bf16 {(bf16 ? 2048 : 256)}^3 {gemm16:0.0} GFLOP/s");

        manual_seed(0);
        using (var resnet = new ResNet(ResNetConfig.ResNet18))
            Compare("ResNet-18", "resnet18", resnet, batch: 16, iterations: quick ? 1 : 3, ResNet18Flops, gemm32, gemm16, threads,
                bf16 ? ["fp32", "fp32-cl", "bf16", "bf16-cl"] : ["fp32", "fp32-cl"], fp32Only: !bf16);
        using (var uni = new VisionTransformer(FoundationModels.Uni))
            Compare("UNI ViT-L/16", "uni", uni, batch: 4, iterations: quick ? 1 : 2, VitFlops(FoundationModels.Uni), gemm32, gemm16, threads,
                bf16 ? ["fp32", "bf16"] : ["fp32"], fp32Only: !bf16);
        if (!quick)
            using (var uni2 = new VisionTransformer(FoundationModels.Uni2H))
                Compare("UNI2-h ViT-H/14", "uni2-h", uni2, batch: 2, iterations: 1, VitFlops(FoundationModels.Uni2H), gemm32, gemm16, threads, ["fp32"],
                    fp32Only: true);
        return 0;
    }

    static double Gemm(ScalarType type, int n = 2048)
    {
        using var a = randn(n, n).to_type(type);
        using var b = randn(n, n).to_type(type);
        using (var warm = matmul(a, b)) { }
        var clock = Stopwatch.StartNew();
        int reps = 0;
        while (clock.Elapsed.TotalSeconds < 2) { using var r = matmul(a, b); reps++; }
        return reps * 2.0 * n * n * n / clock.Elapsed.TotalSeconds / 1e9;
    }

    static void Compare(string title, string arch, nn.Module<Tensor, Tensor> model, int batch, int iterations, double flops,
        double gemm32, double gemm16, int threads, string[] pytorchModes, bool fp32Only = false)
    {
        model.eval();
        // safetensors, written tensor by tensor: PyBridge's pickler held about 20 GB for UNI's 1.2 GB and was killed for memory.
        string weights = Path.Combine(BenchEnvironment.WorkDir, $"{arch}-bench.safetensors");
        TorchSharp.PyBridge.Safetensors.SaveStateDict(weights, model.state_dict());
        Console.WriteLine($"  ({title}: {Process.GetCurrentProcess().WorkingSet64 / 1e9:0.0} GB resident after saving the weights)");
        using var input = randn(batch, 3, 224, 224);
        string npy = Path.Combine(BenchEnvironment.WorkDir, $"{arch}-bench-input.npy");
        Npy.WriteFloat32(npy, input.data<float>().ToArray(), [batch, 3, 224, 224]);

        (model as ResNet)?.FuseBatchNorm();   // as PatchEncoder runs it
        double histo32 = EmbeddingBenchmark.ImagesPerSecond(model, input, iterations, 16, out var fp32Features);
        var peer = pytorchModes.ToDictionary(m => m, m =>
        {
            var py = BenchEnvironment.Run("/usr/bin/python3", [Path.Combine(BenchEnvironment.RepoRoot, "tools", "reference",
                "encoder_speed_reference.py"), weights, npy, $"{threads}", $"{iterations}", "16", arch, m]);
            if (py.Code != 0) throw new InvalidOperationException($"PyTorch reference ({arch}, {m}) failed: " + py.Stderr);
            return JsonDocument.Parse(py.Stdout.Trim().Split('\n')[^1]).RootElement.Clone();
        });
        File.Delete(weights);
        var first = peer["fp32"].GetProperty("first").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        double maxDiff = first.Zip(fp32Features[0]).Max(p => Math.Abs(p.First - p.Second)), scale = first.Max(Math.Abs);
        Console.WriteLine();
        Console.WriteLine($"{title}, 224 px, batch {batch} (chunks of 16), {threads} threads, {iterations} timed pass(es):");
        Console.WriteLine($"  features, Histo fp32 vs PyTorch fp32 (first image): cosine {EmbeddingBenchmark.Cosine(fp32Features[0], first):F7}, "
            + $"max |difference| {maxDiff:E2} of feature scale {scale:F2}");
        foreach (var (mode, result) in peer)
            Console.WriteLine($"  PyTorch {result.GetProperty("torch").GetString()} {mode,-8} {result.GetProperty("images_per_second").GetDouble(),8:0.00} images/s");
        double best32 = peer.Where(p => p.Key.StartsWith("fp32")).Max(p => p.Value.GetProperty("images_per_second").GetDouble());
        Console.WriteLine($"  Histo fp32         {histo32,8:0.00} images/s   ratio to PyTorch's best fp32 {histo32 / best32:0.00}x"
            + (flops > 0 ? $"; {histo32 * flops / 1e9:0} GFLOP/s = {histo32 * flops / 1e9 / gemm32:P0} of the fp32 GEMM peak" : ""));
        if (fp32Only) return;
        double best16 = peer.Where(p => p.Key.StartsWith("bf16")).Max(p => p.Value.GetProperty("images_per_second").GetDouble());
        model.to(ScalarType.BFloat16);
        (model as ResNet)?.FuseBatchNorm();
        using var input16 = input.to_type(ScalarType.BFloat16);
        double histo16 = EmbeddingBenchmark.ImagesPerSecond(model, input16, iterations, 16, out var bf16Features);
        model.to(ScalarType.Float32);
        double mean = Enumerable.Range(0, batch).Average(i => EmbeddingBenchmark.Cosine(fp32Features[i], bf16Features[i]));
        double min = Enumerable.Range(0, batch).Min(i => EmbeddingBenchmark.Cosine(fp32Features[i], bf16Features[i]));
        Console.WriteLine($"  Histo bf16         {histo16,8:0.00} images/s   ratio to PyTorch's best bf16 {histo16 / best16:0.00}x; "
            + $"{histo16 * flops / 1e9:0} GFLOP/s = {histo16 * flops / 1e9 / gemm16:P0} of the bf16 GEMM peak; cosine to fp32 "
            + $"features mean {mean:F5}, min {min:F5}");
    }
}
