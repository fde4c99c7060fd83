using System.Text.Json;
using Histo.VisionLanguage;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// CLIP's towers against <c>tools/reference/clip_reference.py</c> (written from OpenAI's model.py over
/// torch.nn.MultiheadAttention): the reference's float16 state dict, saved with torch.save under OpenAI's names, loaded
/// strictly; image and text embeddings to 1e-4 of their scale.
/// </summary>
public class ClipParityTests
{
    static string GoldenPath(string name) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", name);

    /// <summary>The same model under OpenAI's names, and under Hugging Face's CLIPModel names (tools/reference/clip_hf_reference.py,
    /// PLIP's layout): the same embeddings.</summary>
    [Theory]
    [InlineData("clip-mini.pt")]
    [InlineData("clip-mini-hf.bin")]
    public void ImageAndTextEmbeddingsMatchTheReference(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(GoldenPath("clip-golden.json")));
        var golden = doc.RootElement;
        using var model = ClipModel.Load(GoldenPath(file));
        Assert.Equal(2, model.Config.VisionHeads);
        Assert.Equal(64, model.Config.ImageSize);

        var images = ReferenceImages();
        var rows = golden.GetProperty("tokens").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetInt64())).ToArray();
        var tokens = tensor(rows, [2, 77]);
        using (no_grad())
        {
            AssertClose(golden.GetProperty("image_features"), model.EncodeImage(images), "image");
            AssertClose(golden.GetProperty("text_features"), model.EncodeText(tokens), "text");
        }
        Assert.Equal(golden.GetProperty("logit_scale").GetDouble(), model.LogitScale, 3);
    }

    /// <summary>open_clip's layout (QuiltNet): OpenAI's names with nn.GELU; the reference ran the same weights with nn.GELU.</summary>
    [Fact]
    public void GeluVariantMatchesTheReference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(GoldenPath("clip-mini-gelu.json")));
        using var tokensDoc = JsonDocument.Parse(File.ReadAllText(GoldenPath("clip-golden.json")));
        using var model = ClipModel.Load(GoldenPath("clip-mini.pt"), quickGelu: false);
        var rows = tokensDoc.RootElement.GetProperty("tokens").EnumerateArray()
            .SelectMany(r => r.EnumerateArray().Select(v => v.GetInt64())).ToArray();
        using (no_grad())
        {
            AssertClose(doc.RootElement.GetProperty("image_features"), model.EncodeImage(ReferenceImages()), "image");
            AssertClose(doc.RootElement.GetProperty("text_features"), model.EncodeText(tensor(rows, [2, 77])), "text");
        }
    }

    /// <summary>The reference's images: channel c of image b is sin(x / 7 + c + b) cos(y / 5 - c), 64 x 64.</summary>
    static Tensor ReferenceImages()
    {
        var pixels = new float[2 * 3 * 64 * 64];
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 64; y++)
                    for (int x = 0; x < 64; x++)
                        pixels[((b * 3 + c) * 64 + y) * 64 + x] = (float)(Math.Sin(x / 7.0 + c + b) * Math.Cos(y / 5.0 - c));
        return tensor(pixels, [2, 3, 64, 64]);
    }

    static void AssertClose(JsonElement expected, Tensor actual, string what)
    {
        var e = expected.EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetDouble())).ToArray();
        var a = actual.contiguous().data<float>().ToArray();
        Assert.Equal(e.Length, a.Length);
        double scale = e.Max(Math.Abs), worst = e.Zip(a, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(worst <= 1e-4 * scale, $"{what} embeddings differ by {worst:E2} (scale {scale:F3})");
    }

    [Fact]
    public void RenamedTensorIsNamedInTheError()
    {
        using var dir = new TempDir();
        var tensors = Histo.Models.Checkpoint.Read(GoldenPath("clip-mini.pt"));
        tensors["visual.ln_post.scale"] = tensors["visual.ln_post.weight"];
        tensors.Remove("visual.ln_post.weight");
        string path = dir["renamed.safetensors"];
        TorchSharp.PyBridge.Safetensors.SaveStateDict(path, tensors);
        var e = Assert.Throws<HistoException>(() => ClipModel.Load(path));
        Assert.Contains("visual.ln_post.weight", e.Message);
        Assert.Contains("visual.ln_post.scale", e.Message);
    }
}

/// <summary><c>histo zeroshot</c> against the reference's prompt-ensembled probabilities for the same files.</summary>
public class ZeroShotCommandTests
{
    static string GoldenPath(string name) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", name);

    [Fact]
    public void Cli_ZeroShotGivesTheReferenceProbabilities()
    {
        using var dir = new TempDir();
        using var doc = JsonDocument.Parse(File.ReadAllText(GoldenPath("clip-golden.json")));
        var golden = doc.RootElement.GetProperty("zeroshot");
        var classes = golden.GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).ToList();
        var tokenizer = JsonDocument.Parse(File.ReadAllText(GoldenPath("clip-tokenizer-golden.json"))).RootElement.GetProperty("training");
        Directory.CreateDirectory(dir["bpe"]);
        File.WriteAllText(Path.Combine(dir["bpe"], "merges.txt"),
            "#version: 0.2\n" + string.Join("\n", tokenizer.GetProperty("merges").EnumerateArray().Select(m => m.GetString())) + "\n");
        var expected = golden.GetProperty("images").EnumerateArray().ToList();
        File.WriteAllText(dir["labels.csv"], "image,label\nclip-zeroshot-0.png,stroma\nclip-zeroshot-1.png,tumour\n");
        var run = Cli.Run(["zeroshot", "--weights", GoldenPath("clip-mini.pt"), "--prompts", GoldenPath("clip-zeroshot-prompts.json"),
            "--tokenizer", dir["bpe"], "--labels", dir["labels.csv"], "-o", dir["out"],
            .. expected.Select(e => GoldenPath(e.GetProperty("image").GetString()!))]);
        Assert.True(run.Code == 0, run.Stderr);
        var lines = File.ReadAllLines(Path.Combine(dir["out"], "predictions.csv"));
        Assert.Equal("image,predicted," + string.Join(',', classes.Select(c => "p_" + c)), lines[0]);
        for (int i = 0; i < expected.Count; i++)
        {
            var cells = lines[i + 1].Split(',');
            var p = expected[i].GetProperty("probabilities").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            Assert.Equal(expected[i].GetProperty("image").GetString(), cells[0]);
            Assert.Equal(classes[Array.IndexOf(p, p.Max())], cells[1]);
            for (int c = 0; c < p.Length; c++)
                Assert.Equal(p[c], double.Parse(cells[2 + c], System.Globalization.CultureInfo.InvariantCulture), 5);
        }
        // Both predicted stroma (the reference's argmax): one of the two labels right, balanced over the two labelled classes.
        Assert.Contains("accuracy 0.500, balanced accuracy 0.500", run.Stdout);

        // CLIP's own vocabulary has more ids than this small model's embeddings: refused with the way out named.
        var wrong = Cli.Run(["zeroshot", "--weights", GoldenPath("clip-mini.pt"), "--prompts", GoldenPath("clip-zeroshot-prompts.json"),
            "-o", dir["out2"], GoldenPath("clip-zeroshot-0.png")]);
        Assert.Equal(1, wrong.Code);
        Assert.Contains("--tokenizer", wrong.Stderr);
        Assert.False(Directory.Exists(dir["out2"]));
    }
}
