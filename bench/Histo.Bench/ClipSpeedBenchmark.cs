using System.Diagnostics;
using System.Text.Json;
using Histo.Text;
using Histo.VisionLanguage;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// CLIP ViT-B/16 at full size, Histo against PyTorch (tools/reference/clip_speed_reference.py) on the same random weights,
/// images and prompts in one run: image embeddings/s at 224 px, text embeddings (prompts)/s at context 77, the ratio, and
/// the agreement of the first image's and prompt's embeddings (full-size parity of both towers).
/// </summary>
static class ClipSpeedBenchmark
{
    public static int Run(bool quick)
    {
        Directory.CreateDirectory(BenchEnvironment.WorkDir);
        BenchEnvironment.EnsureDebianPackages("python3-torch", "python3-numpy");
        int threads = Environment.ProcessorCount, images = quick ? 8 : 16, iterations = quick ? 1 : 2, chunk = 8;
        set_num_threads(threads);
        manual_seed(0);
        using var model = new ClipModel(ClipConfig.VitB16);
        model.eval();
        string weights = Path.Combine(BenchEnvironment.WorkDir, "clip-vit-b-16-bench.safetensors");
        TorchSharp.PyBridge.Safetensors.SaveStateDict(weights, model.state_dict());
        using var pixels = randn(images, 3, 224, 224);
        var tokenizer = ClipTokenizer.Clip();
        string[] classes = ["adenocarcinoma", "squamous cell carcinoma", "normal tissue", "lymphocytes", "necrosis", "stroma", "mucosa",
            "fat"];
        string[] templates = ["an H&E image of CLASSNAME.", "CLASSNAME", "a histopathology slide showing CLASSNAME",
            "presence of CLASSNAME tissue", "an image of CLASSNAME", "CLASSNAME, H&E stain", "a microscopy image of CLASSNAME",
            "tissue of CLASSNAME"];
        var prompts = templates.SelectMany(t => classes.Select(c => t.Replace("CLASSNAME", c))).ToArray();
        using var tokens = tensor(prompts.SelectMany(p => tokenizer.TokenizePadded(p)).ToArray(), [prompts.Length, 77]);
        string imagesNpy = Path.Combine(BenchEnvironment.WorkDir, "clip-bench-images.npy");
        string tokensNpy = Path.Combine(BenchEnvironment.WorkDir, "clip-bench-tokens.npy");
        Npy.WriteFloat32(imagesNpy, pixels.data<float>().ToArray(), [images, 3, 224, 224]);
        Npy.WriteFloat32(tokensNpy, tokens.to_type(ScalarType.Float32).data<float>().ToArray(), [prompts.Length, 77]);

        float[] firstImage, firstText;
        double imageSeconds, textSeconds;
        using (inference_mode())
        {
            Tensor Images() => cat(Enumerable.Range(0, images / chunk).Select(b => model.EncodeImage(pixels.narrow(0, b * chunk, chunk)))
                .ToList(), 0);
            using (Images()) { }
            using (model.EncodeText(tokens)) { }
            var clock = Stopwatch.StartNew();
            Tensor? fi = null;
            for (int i = 0; i < iterations; i++) { fi?.Dispose(); fi = Images(); }
            imageSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            Tensor? ft = null;
            for (int i = 0; i < iterations; i++) { ft?.Dispose(); ft = model.EncodeText(tokens); }
            textSeconds = clock.Elapsed.TotalSeconds;
            firstImage = fi![0].data<float>().ToArray();
            firstText = ft![0].data<float>().ToArray();
            fi.Dispose();
            ft.Dispose();
        }
        var py = BenchEnvironment.Run("/usr/bin/python3", [Path.Combine(BenchEnvironment.RepoRoot, "tools", "reference",
            "clip_speed_reference.py"), weights, imagesNpy, tokensNpy, $"{threads}", $"{iterations}", $"{chunk}"]);
        File.Delete(weights);
        if (py.Code != 0) throw new InvalidOperationException("PyTorch reference failed: " + py.Stderr);
        var peer = JsonDocument.Parse(py.Stdout.Trim().Split('\n')[^1]).RootElement;
        double histoImages = iterations * images / imageSeconds, histoPrompts = iterations * prompts.Length / textSeconds;
        double torchImages = peer.GetProperty("images_per_second").GetDouble(),
            torchPrompts = peer.GetProperty("prompts_per_second").GetDouble();
        void Agreement(string what, float[] ours, JsonElement theirs)
        {
            var t = theirs.EnumerateArray().Select(v => v.GetSingle()).ToArray();
            double diff = ours.Zip(t).Max(p => Math.Abs(p.First - p.Second)), scale = t.Max(Math.Abs);
            Console.WriteLine($"  {what} embedding, Histo vs PyTorch: cosine {EmbeddingBenchmark.Cosine(ours, t):F7}, max |difference| "
                + $"{diff:E2} of scale {scale:F3} ({diff / scale:E1} relative)");
        }
        string torchVersion = peer.GetProperty("torch").GetString()!;
        Console.WriteLine($"CLIP ViT-B/16 (random weights), {threads} threads, {iterations} timed pass(es); PyTorch {torchVersion}:");
        Agreement("first image's", firstImage, peer.GetProperty("first_image"));
        Agreement("first prompt's", firstText, peer.GetProperty("first_text"));
        Console.WriteLine($"  image tower, {images} images at 224 px in chunks of {chunk}: Histo {histoImages:0.00} images/s, PyTorch "
            + $"{torchImages:0.00} images/s, ratio {histoImages / torchImages:0.00}x");
        Console.WriteLine($"  text tower, {prompts.Length} prompts at context 77: Histo {histoPrompts:0.0} prompts/s, PyTorch "
            + $"{torchPrompts:0.0} prompts/s, ratio {histoPrompts / torchPrompts:0.00}x");
        return 0;
    }
}
