using Histo.Distillation;
using Histo.Imaging;
using Histo.Models;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Tests;

[Collection(TorchRandomCollection.Name)]
public class EncoderDistillationTests
{
    /// <summary>This collection runs alone after the parallel classes: their garbage is collected and finalised first, so no
    /// collection of it runs beside these tests' native calls (the test host crashed here in two of five runs).</summary>
    public EncoderDistillationTests()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    /// <summary>A student small and fast enough for a few epochs in seconds.</summary>
    static DistillOptions Tiny => new()
    {
        Student = "resnet10", InputSize = 64, Views = 2, Epochs = 2, BatchSize = 8, WarmupEpochs = 0, LearningRate = 3e-3, Seed = 5,
    };

    /// <summary>Striped, coloured 96 px images: each has its own orientation, frequency and colours, so their ImageNet
    /// features differ.</summary>
    static List<string> Images(TempDir dir, int count)
    {
        var random = new Random(2);
        var files = new List<string>();
        for (int i = 0; i < count; i++)
        {
            const int side = 96;
            var image = RgbaImage.Filled(side, side, 0, 0, 0);
            double angle = random.NextDouble() * Math.PI, frequency = 0.05 + random.NextDouble() * 0.4;
            var (a, b) = (new[] { random.Next(256), random.Next(256), random.Next(256) },
                new[] { random.Next(256), random.Next(256), random.Next(256) });
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++)
                {
                    double w = 0.5 + 0.5 * Math.Sin(frequency * (x * Math.Cos(angle) + y * Math.Sin(angle)));
                    for (int c = 0; c < 3; c++) image.Pixels[(y * side + x) * 4 + c] = (byte)(a[c] * w + b[c] * (1 - w));
                }
            string path = dir[$"img-{i:D2}.png"];
            image.Save(path);
            files.Add(path);
        }
        return files;
    }

    /// <summary>Mean cosine between two encoders' features of the images (each at its own input side).</summary>
    static double MeanCosine(PatchEncoder a, PatchEncoder b, IReadOnlyList<string> files)
    {
        Tensor Embed(PatchEncoder e)
        {
            int s = e.Spec.InputSize;
            var pixels = files.SelectMany(f => RgbaImage.Load(f).Resize(s, s).Pixels).ToArray();
            using var batch = tensor(pixels, [files.Count, s, s, 4]);
            return e.Embed(batch);
        }
        using var fa = Embed(a);
        using var fb = Embed(b);
        using var cos = nn.functional.cosine_similarity(fa, fb, 1).mean();
        return cos.item<float>();
    }

    [Fact]
    public void TheStudentLearnsTheTeachersFeaturesResumesExactlyAndIsAnEncoder()
    {
        using var dir = new TempDir();
        var files = Images(dir, 16);
        using var patches = new ImageFolderPatches(files);
        var straight = EncoderDistillation.Run(patches, Tiny, dir["straight"]);
        Assert.Equal(2, straight.Count);

        // Killed in its second epoch, then run again: it resumes from the checkpoint with the same losses and student.
        Assert.Throws<OperationCanceledException>(() => EncoderDistillation.Run(patches, Tiny, dir["resumed"],
            p => { if (p.Epoch == 2) throw new OperationCanceledException(); }));
        var error = Assert.Throws<HistoException>(() => EncoderDistillation.Run(patches, Tiny with { Views = 3 }, dir["resumed"]));
        Assert.Contains("Options.Views 2 -> 3", error.Message);
        Assert.Equal(straight, EncoderDistillation.Run(patches, Tiny, dir["resumed"]));
        var a = Checkpoint.Read(dir["straight/" + DistilledEncoder.WeightsFile]);
        var b = Checkpoint.Read(dir["resumed/" + DistilledEncoder.WeightsFile]);
        Assert.All(a.Keys, k => Assert.True(a[k].equal(b[k]).all().item<bool>(), k));

        // The teacher's cached targets: view 0 of each patch is the patch as `histo embed` sees it, so its record is the
        // teacher's feature of the patch (BN-fused inference encoder versus the unfused network that wrote the cache).
        using var teacher = EncoderRegistry.Create(EncoderRegistry.Default);
        var records = File.ReadAllBytes(dir["straight/" + EncoderDistillation.TargetsFile]);
        Assert.Equal(16 * 2 * 512 * sizeof(float), records.Length);
        var cached = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(records).ToArray();
        var image = RgbaImage.Load(files[3]).Resize(224, 224);
        using (var batch = tensor(image.Pixels, [1, 224, 224, 4]))
        using (var feature = teacher.Embed(batch))
        {
            var expected = feature.data<float>().ToArray();
            var record = cached.AsSpan(3 * 2 * 512, 512).ToArray();
            Assert.All(Enumerable.Range(0, 512), j => Assert.Equal(expected[j], record[j], 1e-3));
        }

        // More epochs extend the run; the student's features move towards the teacher's (a random student's cosine is low).
        var before = MeanCosineOfRun(dir["straight"], teacher, files);
        var extended = EncoderDistillation.Run(patches, Tiny with { Epochs = 12 }, dir["straight"]);
        Assert.Equal(12, extended.Count);
        Assert.True(extended[^1] < extended[0], string.Join(", ", extended));
        var after = MeanCosineOfRun(dir["straight"], teacher, files);
        Assert.True(after > before && after > 0.8, $"cosine to the teacher {before:0.000} -> {after:0.000}");
    }

    static double MeanCosineOfRun(string run, PatchEncoder teacher, IReadOnlyList<string> files)
    {
        using var student = EncoderRegistry.Create(run);
        Assert.Equal("distilled:resnet10<-resnet18-imagenet", student.Spec.Name);
        Assert.Equal((64, 512), (student.Spec.InputSize, student.FeatureDim));
        return MeanCosine(student, teacher, files);
    }

    [Fact]
    public void AttentionTransferTrainsAResNetStudentAndRefusesAViT()
    {
        using var dir = new TempDir();
        var files = Images(dir, 8);
        using var patches = new ImageFolderPatches(files);
        var losses = EncoderDistillation.Run(patches, Tiny with { Losses = ["cosine", "at"], Epochs = 1 }, dir["at"]);
        Assert.True(double.IsFinite(losses[0]) && losses[0] > 0);
        // Records hold the feature and one map per stage at the sides where 224 px and 64 px stages meet: 16, 8, 4, 2.
        Assert.Equal(8 * 2 * (512 + 256 + 64 + 16 + 4) * sizeof(float), new FileInfo(dir["at/" + EncoderDistillation.TargetsFile]).Length);
        var error = Assert.Throws<UsageException>(() => EncoderDistillation.Run(patches,
            Tiny with { Student = "vit-tiny", Losses = ["at"] }, dir["vit"]));
        Assert.Contains("--loss at", error.Message);
        Assert.Throws<UsageException>(() => (Tiny with { Teacher = "resnet18" }).Validate());
        Assert.Throws<UsageException>(() => (Tiny with { Losses = ["kd"] }).Validate());
    }

    [Fact]
    public void TheCliDistilsAndItsRunEmbeds()
    {
        using var dir = new TempDir();
        Images(dir, 8);
        var (code, stdout, stderr) = Cli.Run("distill", "--patches", dir.Path, "--student", "resnet10", "--input-size", "48",
            "--views", "1", "--epochs", "1", "--batch-size", "4", "--warmup-epochs", "0", "-o", dir["run"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("1 epoch(s)", stdout);
        Assert.True(File.Exists(dir["run/" + DistilledEncoder.InfoFile]));
        (code, _, stderr) = Cli.Run("distill", "--patches", dir.Path, "--loss", "kd", "-o", dir["bad"]);
        Assert.Equal(2, code);
        Assert.Contains("--loss 'kd'", stderr);
        Assert.False(Directory.Exists(dir["bad"]));
        (code, _, stderr) = Cli.Run("distill", "--patches", dir["missing"], "-o", dir["bad"]);
        Assert.Equal(1, code);
        Assert.Contains("image folder not found", stderr);
    }
}
