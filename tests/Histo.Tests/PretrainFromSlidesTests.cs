using Histo.Models;
using Histo.SelfSupervised;
using Histo.Slides;

namespace Histo.Tests;

/// <summary><c>histo pretrain --slides</c>: DINO reads patches straight from tiled slides.</summary>
[Collection(TorchRandomCollection.Name)]
public class PretrainFromSlidesTests(SyntheticSlideFixture fixture) : IClassFixture<SyntheticSlideFixture>
{
    [Fact]
    public void PretrainsOnPatchesReadFromSlidesAndTheTeacherEmbeds()
    {
        using var dir = new TempDir();
        var slides = fixture.All.Select(s => fixture.Dir[s.SlideId + ".tif"]).ToList();
        TilingJob.Run(new TilingJobOptions { Slides = slides, OutputDir = dir["tiles"], Tiling = new TilingOptions { TargetMpp = 2.0,
            PatchSize = 64 } });
        using (var source = new SlidePatches(slides, dir["tiles"]))
        {
            Assert.True(source.Count >= 8, $"{source.Count} patches");
            var patch = source.Read(source.Count - 1);
            Assert.Equal((64, 64), (patch.Width, patch.Height));
        }

        string[] Args(string run) => ["pretrain", "--slides", fixture.Dir.Path, "--coords", dir["tiles"], "-o", dir[run],
            "--arch", "vit-tiny", "--epochs", "1", "--batch-size", "4", "--out-dim", "32", "--local-crops", "2", "--global-size", "48", "--local-size", "32"];
        var (code, stdout, stderr) = Cli.Run(Args("run"));
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains($"from {slides.Count} slides", stdout);
        // Same seed in another process: the same teacher, byte for byte (no per-process hash seeds in the augmentations).
        (code, stdout, stderr) = Cli.Run(Args("again"));
        Assert.True(code == 0, stdout + stderr);
        Assert.Equal(File.ReadAllBytes(dir["run/" + DinoTraining.BackboneFile]),
            File.ReadAllBytes(dir["again/" + DinoTraining.BackboneFile]));
        using var encoder = EncoderRegistry.Create(dir["run"]);
        Assert.Equal(192, encoder.FeatureDim);
    }

    [Fact]
    public void MissingCoordinatesOrSourcesAreOneLineErrors()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Cli.Run("pretrain", "--slides", fixture.SlidePath, "--coords", dir.Path, "-o", dir["run"]);
        Assert.Equal(1, code); // missing input data, not a usage error
        Assert.Contains("histo tile", stderr);
        Assert.False(Directory.Exists(dir["run"]) && Directory.EnumerateFiles(dir["run"]).Any());
        (code, _, stderr) = Cli.Run("pretrain", "-o", dir["run"]);
        Assert.Equal(2, code);
        Assert.Contains("--patches", stderr);
        (code, _, stderr) = Cli.Run("pretrain", "--slides", fixture.SlidePath, "-o", dir["run"]);
        Assert.Equal(2, code);
        Assert.Contains("--coords", stderr);
    }
}
