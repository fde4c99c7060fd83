using Histo.Imaging;
using Histo.Models;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Tests;

[Collection(TorchRandomCollection.Name)]
public class DinoTrainingTests
{
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
        Assert.Throws<OperationCanceledException>(() => DinoTraining.Run(images, Tiny, dir["resumed"], p => { if (p.Epoch == 2) throw new OperationCanceledException(); }));
        // Resuming with other settings would silently change the run: refused, naming what differs, the checkpoint untouched.
        var checkpointBefore = File.ReadAllBytes(dir["resumed/checkpoint.safetensors"]);
        var error = Assert.Throws<HistoException>(() => DinoTraining.Run(images, Tiny with { OutDim = 32, Augmentation = Tiny.Augmentation with { LocalCrops = 1 } }, dir["resumed"]));
        Assert.Contains("Options.OutDim 64 -> 32", error.Message);
        Assert.Contains("Options.Augmentation.LocalCrops 2 -> 1", error.Message);
        Assert.Contains("Images 8 -> 7", Assert.Throws<HistoException>(() => DinoTraining.Run(images.Take(7).ToList(), Tiny with { BatchSize = 7 }, dir["resumed"])).Message);
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
    public void TooFewImagesAndEmptyFoldersAreClearErrors()
    {
        using var dir = new TempDir();
        Assert.Contains("no PNG", Assert.Throws<HistoException>(() => new ImageFolderPatches(dir.Path)).Message);
        var images = Images(dir, 2);
        Assert.Contains("--batch-size", Assert.Throws<HistoException>(() => DinoTraining.Run(images, Tiny, dir["run"])).Message);
    }
}
