using Histo.Imaging;
using Histo.Models;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Tests;

[Collection(TorchRandomCollection.Name)]
public class DinoTrainingTests
{
    /// <summary>This collection runs alone after the parallel classes: their garbage is collected and finalised first, so no
    /// collection of it runs beside these tests' native calls (the test host crashed here in two of five runs).</summary>
    public DinoTrainingTests()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    /// <summary>Small images and crops so a few DINO iterations take seconds.</summary>
    static DinoOptions Tiny => new()
    {
        Arch = "vit-tiny", Epochs = 2, BatchSize = 4, OutDim = 64, WarmupEpochs = 1, Seed = 3,
        Augmentation = new DinoAugmentation { GlobalSize = 48, LocalSize = 32, LocalCrops = 2 },
    };

    static List<string> Images(TempDir dir, int count)
    {
        var random = new Random(1);
        var files = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var image = RgbaImage.Filled(64, 64, (byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
            for (int p = 0; p < image.Pixels.Length; p += 4) image.Pixels[p] = (byte)((image.Pixels[p] + p / 4 % 64 * 3) % 256);
            string path = dir[$"img-{i:D2}.png"];
            image.Save(path);
            files.Add(path);
        }
        return files;
    }

    [Fact]
    public void TrainsResumesExactlyAndItsTeacherEmbeds()
    {
        using var dir = new TempDir();
        var images = Images(dir, 8);
        var straight = DinoTraining.Run(images, Tiny, dir["straight"]);
        Assert.Equal(2, straight.Count);
        Assert.All(straight, l => Assert.True(double.IsFinite(l) && l > 0));

        // One epoch, then a second run that resumes from the checkpoint: the same losses and teacher.
        Assert.Throws<OperationCanceledException>(() => DinoTraining.Run(images, Tiny, dir["resumed"],
            p => { if (p.Epoch == 2) throw new OperationCanceledException(); }));
        // Resuming with other settings would silently change the run: refused, naming what differs, the checkpoint untouched.
        var checkpointBefore = File.ReadAllBytes(dir["resumed/checkpoint.safetensors"]);
        var error = Assert.Throws<HistoException>(() => DinoTraining.Run(images,
            Tiny with { OutDim = 32, Augmentation = Tiny.Augmentation with { LocalCrops = 1 } }, dir["resumed"]));
        Assert.Contains("Options.OutDim 64 -> 32", error.Message);
        Assert.Contains("Options.Augmentation.LocalCrops 2 -> 1", error.Message);
        Assert.Contains("Images 8 -> 7",
            Assert.Throws<HistoException>(() => DinoTraining.Run(images.Take(7).ToList(), Tiny with { BatchSize = 7 },
                dir["resumed"])).Message);
        Assert.Equal(checkpointBefore, File.ReadAllBytes(dir["resumed/checkpoint.safetensors"]));
        var resumed = DinoTraining.Run(images, Tiny, dir["resumed"]);
        Assert.Equal(straight, resumed);
        var a = Checkpoint.Read(dir["straight/" + DinoTraining.BackboneFile]);
        var b = Checkpoint.Read(dir["resumed/" + DinoTraining.BackboneFile]);
        Assert.All(a.Keys, k => Assert.True(a[k].equal(b[k]).all().item<bool>(), k));

        // The run folder is an encoder.
        using var encoder = EncoderRegistry.Create(dir["straight"]);
        Assert.Equal("vit-tiny", encoder.Spec.Name);
        var image = RgbaImage.Load(images[0]).Resize(224, 224);
        using var batch = tensor(image.Pixels, [1, 224, 224, 4]);
        using var features = encoder.Embed(batch);
        Assert.Equal(new long[] { 1, 192 }, features.shape);
    }

    [Fact]
    public void TheDefaultWarmUpIsATenthOfTheRunSoTheLearningRateDecays()
    {
        // main_dino.py warms up over 10 of its 100 epochs; a 10-epoch run used to warm up over all 10.
        Assert.Equal(1 * 7, (new DinoOptions { Epochs = 10 }).WarmupIterations(7));
        Assert.Equal(10 * 7, (new DinoOptions { Epochs = 100 }).WarmupIterations(7));
        Assert.Equal(10 * 7, (new DinoOptions { Epochs = 400 }).WarmupIterations(7));
        Assert.Throws<UsageException>(() => (Tiny with { WarmupEpochs = 2 }).Validate());

        // A default 10-epoch run of 2 iterations per epoch: warm-up over iterations 0-1 (np.linspace(0, lr, 2)), then
        // DINO's cosine over the other 18: lr_i = min + (lr - min)(1 + cos(pi i / 18)) / 2. Stopped after 4 iterations.
        using var dir = new TempDir();
        var images = Images(dir, 8);
        var rates = new List<double>();
        var options = Tiny with { Epochs = 10, WarmupEpochs = null };
        Assert.Throws<OperationCanceledException>(() => DinoTraining.Run(images, options, dir["run"], p =>
        {
            rates.Add(p.LearningRate);
            if (rates.Count == 4) throw new OperationCanceledException();
        }));
        double peak = 5e-4 * 4 / 256, min = 1e-6;
        double[] expected = [0, peak, peak, min + (peak - min) * (1 + Math.Cos(Math.PI / 18)) / 2];
        Assert.Equal(expected, rates, new Tolerance(1e-15));
    }

    [Fact]
    public void AFinishedRunIsExtendedWithMoreEpochsButNotShortened()
    {
        using var dir = new TempDir();
        var images = Images(dir, 8);
        var first = DinoTraining.Run(images, Tiny, dir["run"]);
        var schedule = new List<double>();
        // Two more epochs: the settings check lets the epoch count change, and training continues from epoch 3 with the
        // schedules of a 4-epoch run (its cosine, not the 2-epoch one that had reached its end).
        var extended = DinoTraining.Run(images, Tiny with { Epochs = 4 }, dir["run"], p => schedule.Add(p.LearningRate));
        Assert.Equal(4, extended.Count);
        Assert.Equal(first, extended.Take(2));
        double peak = 5e-4 * 4 / 256, min = 1e-6;
        // 4 epochs x 2 iterations, 1 epoch (2 iterations) of warm-up: cosine over 6, iterations 4..7 are its i = 2..5.
        var expected = Enumerable.Range(2, 4).Select(i => min + (peak - min) * (1 + Math.Cos(Math.PI * i / 6)) / 2);
        Assert.Equal(expected, schedule, new Tolerance(1e-15));
        var error = Assert.Throws<UsageException>(() => DinoTraining.Run(images, Tiny with { Epochs = 3 }, dir["run"]));
        Assert.Contains("already holds 4 epochs", error.Message);
    }

    [Fact]
    public void InitStartsBothNetworksFromAnEncoderOfTheSameArchitecture()
    {
        using var dir = new TempDir();
        var images = Images(dir, 8);
        DinoTraining.Run(images, Tiny with { Epochs = 1, WarmupEpochs = 0 }, dir["first"]);
        // Momentum 1 keeps the teacher where it started: its saved backbone is then the --init encoder's, byte for byte.
        var continued = Tiny with { Arch = null, Init = dir["first"], Epochs = 1, WarmupEpochs = 0, TeacherMomentum = 1 };
        DinoTraining.Run(images, continued, dir["second"]);
        var a = Checkpoint.Read(dir["first/" + DinoTraining.BackboneFile]);
        var b = Checkpoint.Read(dir["second/" + DinoTraining.BackboneFile]);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        Assert.All(a.Keys, k => Assert.True(a[k].equal(b[k]).all().item<bool>(), k));
        // A vit-tiny encoder cannot start a resnet18.
        var error = Assert.Throws<UsageException>(() => DinoTraining.Run(images, continued with { Arch = "resnet18" }, dir["third"]));
        Assert.Contains("not --arch resnet18", error.Message);
    }

    [Fact]
    public void TheImageNetResNetTakesCropsOfOtherSizes()
    {
        // --init resnet18-imagenet trains on crops of --global-size: its 224 px BGR mean image is area-averaged to that
        // size. At 112 px each pixel of it is the mean of a 2 x 2 block of the original (the input here is zero).
        using var normaliser = new InputNormaliser(new InputNormalization.BgrMeanImage());
        using var mean = CntkResNet18.LoadMeanImage();
        using var blocks = mean.reshape(3, 112, 2, 112, 2).mean([2, 4]);
        using var zero = zeros(1, 3, 112, 112);
        using var input = normaliser.FromBytes(zero);
        Assert.True(input.squeeze(0).allclose(-blocks, rtol: 0, atol: 1e-4));
        using var encoder = EncoderRegistry.Create("resnet18-imagenet", inputSize: 64);
        using var features = encoder.Embed(zeros(2, 64, 64, 4, dtype: ScalarType.Byte));
        Assert.Equal(new long[] { 2, 512 }, features.shape);
    }

    [Fact]
    public void HiddenFilesAndStagingFoldersOfKilledRunsAreNotPatches()
    {
        using var dir = new TempDir();
        var image = RgbaImage.Filled(8, 8, 10, 20, 30);
        Directory.CreateDirectory(dir["patches/slide-a"]);
        Directory.CreateDirectory(dir["patches/.slide-b.host.1234.tmp"]);
        image.Save(dir["patches/slide-a/0_0.png"]);
        image.Save(dir["patches/slide-a/.0_8.png"]);
        image.Save(dir["patches/.slide-b.host.1234.tmp/0_0.png"]);
        using var patches = new ImageFolderPatches(dir["patches"]);
        Assert.Equal(1, patches.Count);
    }

    [Theory]
    [InlineData("--batch-size", "0")]
    [InlineData("--global-size", "0")]
    [InlineData("--out-dim", "0")]
    [InlineData("--local-crops", "-1")]
    [InlineData("--teacher-temp", "0")]
    [InlineData("--epochs", "0")]
    [InlineData("--lr", "NaN")]
    [InlineData("--warmup-epochs", "10")]
    public void BadOptionValuesAreOneLineUsageErrors(string option, string value)
    {
        using var dir = new TempDir();
        Images(dir, 8);
        var (code, _, stderr) = Cli.Run("pretrain", "--patches", dir.Path, "-o", dir["run"], option, value); // 10 epochs by default
        Assert.Equal(2, code);
        Assert.Contains($"{option} {value}", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(dir["run"]));
    }

    sealed class Tolerance(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= tolerance;
        public int GetHashCode(double d) => 0;
    }

    [Fact]
    public void TooFewImagesAndEmptyFoldersAreClearErrors()
    {
        using var dir = new TempDir();
        Assert.Contains("no PNG", Assert.Throws<HistoException>(() => new ImageFolderPatches(dir.Path)).Message);
        var images = Images(dir, 2);
        Assert.Contains("--batch-size", Assert.Throws<HistoException>(() => DinoTraining.Run(images, Tiny, dir["run"])).Message);
    }
}
