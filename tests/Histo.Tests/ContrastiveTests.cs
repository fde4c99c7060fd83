using System.Text.Json;
using Histo.VisionLanguage;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// CLIP's symmetric InfoNCE against tools/reference/infonce_reference.py (PyTorch autograd, float64): loss, batch accuracy
/// and the gradients of both embeddings and of the temperature, 1e-6; then histo clip-train end to end on synthetic captions,
/// resumed, and its run used by histo zeroshot.
/// </summary>
public class ContrastiveTests
{
    static Tensor Matrix(JsonElement rows) => tensor(rows.EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetDouble()))
        .ToArray(), [rows.GetArrayLength(), rows[0].GetArrayLength()]);

    [Fact]
    public void InfoNceMatchesPyTorch()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "infonce-golden.json")));
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var image = Matrix(c.GetProperty("image")).requires_grad_();
            var text = Matrix(c.GetProperty("text")).requires_grad_();
            var scale = tensor(c.GetProperty("logit_scale").GetDouble(), ScalarType.Float64).requires_grad_();
            var (loss, accuracy) = InfoNce.Loss(image, text, scale);
            loss.backward();
            Assert.Equal(c.GetProperty("loss").GetDouble(), loss.item<double>(), 6);
            Assert.Equal(c.GetProperty("accuracy").GetDouble(), accuracy, 12);
            Assert.Equal(c.GetProperty("grad_logit_scale").GetDouble(), scale.grad!.item<double>(), 6);
            foreach (var (name, t) in new[] { ("grad_image", image), ("grad_text", text) })
            {
                var expected = Matrix(c.GetProperty(name));
                double worst = t.grad!.sub(expected).abs().max().item<double>();
                Assert.True(worst < 1e-6, $"{name}: largest difference {worst}");
            }
        }
    }

    [Fact]
    public void Cli_ClipTrainOnSyntheticCaptionsResumesAndServesZeroShot()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Cli.Run("synth", "-o", dir["cohort"], "--slides", "3", "--width", "1024", "--height", "768",
            "--captions", "12", "--caption-size", "32");
        Assert.True(code == 0, stderr);
        string captions = dir["cohort/captions/captions.csv"];
        var rows = File.ReadAllLines(captions);
        Assert.Equal("image,caption,label,slide_id,case_id", rows[0]);
        Assert.Equal(3 * 12, rows.Length - 1);
        Assert.All(rows.Skip(1), r => Assert.Contains(r.Split(',')[2], new[] { "normal", "glandular", "solid" }));

        string[] train = ["clip-train", "--pairs", captions, "-o", dir["run"], "--image-encoder", "resnet18", "--image-size", "32",
            "--text-encoder", "bow", "--embed-dim", "16", "--text-width", "32", "--batch-size", "12", "--warmup-epochs", "0"];
        (code, var stdout, stderr) = Cli.Run([.. train, "--epochs", "1"]);
        Assert.True(code == 0, stderr);
        // Extended by one epoch: the first is kept (the loss printed for it is the same), the second trained.
        (code, var stdout2, stderr) = Cli.Run([.. train, "--epochs", "2"]);
        Assert.True(code == 0, stderr);
        string first = stdout.Split("per epoch: ")[1].Split('\n')[0].Trim();
        Assert.StartsWith(first + ", ", stdout2.Split("per epoch: ")[1]);
        // A pairs file naming a missing image: one line with the CSV's line, and no run folder left behind.
        File.WriteAllLines(dir["bad.csv"], ["image,caption", .. Enumerable.Range(0, 12).Select(i => $"nowhere-{i}.png,a caption")]);
        (code, _, stderr) = Cli.Run(["clip-train", "--pairs", dir["bad.csv"], "-o", dir["bad-run"], .. train[5..], "--epochs", "1"]);
        Assert.Equal(1, code);
        Assert.Contains("bad.csv:2: image", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(dir["bad-run"]));
        // Other settings on the same run are refused, naming the difference.
        (code, _, stderr) = Cli.Run([.. train, "--epochs", "2", "--lr", "1e-3"]);
        Assert.Equal(1, code);
        Assert.Contains("LearningRate", stderr);

        var images = Directory.GetFiles(dir["cohort/captions/images"]).Order().ToArray();
        (code, stdout, stderr) = Cli.Run(["zeroshot", "--model", dir["run"], "--prompts", dir["cohort/captions/prompts.json"],
            "--labels", captions, "-o", dir["zs"], .. images]);
        Assert.True(code == 0, stderr);
        Assert.Contains("balanced accuracy", stdout);
        Assert.Equal(images.Length + 1, File.ReadAllLines(dir["zs/predictions.csv"]).Length);

        // The run as a patch encoder (its image tower and projection), then slide-level zero-shot by MI-Zero pooling.
        (code, _, stderr) = Cli.Run("tile", dir["cohort/slides"], "--mpp", "2", "--patch-size", "32", "--min-tissue", "0.3",
            "-o", dir["tiles"]);
        Assert.True(code == 0, stderr);
        (code, _, stderr) = Cli.Run("embed", dir["cohort/slides"], "--coords", dir["tiles"], "--encoder", dir["run"], "-o", dir["emb"]);
        Assert.True(code == 0, stderr);
        var features = Histo.IO.PatchFeatures.Read(Directory.GetFiles(dir["emb/features"], "*.h5").Order().First());
        Assert.Equal(16, features.Dim);   // the run's --embed-dim
        (code, stdout, stderr) = Cli.Run("zeroshot", "--model", dir["run"], "--prompts", dir["cohort/captions/prompts.json"],
            "--features", dir["emb/features"], "--labels", dir["cohort/labels.csv"], "--topk", "1,5", "--slides",
                dir["cohort/slides"], "-o", dir["mizero"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("top5", stdout);
        Assert.Equal(1 + 3 * 3, File.ReadAllLines(dir["mizero/slide-predictions.csv"]).Length);   // 3 slides x (mean, top1, top5)
        // A heatmap per slide and class.
        Assert.Equal(3 * 3, Directory.GetFiles(dir["mizero/heatmaps"], "*.png").Length);
    }
}
