using PureHDF;
using PureHDF.VOL.Native;
using Histo.IO;
using Histo.Models;
using Histo.Pipeline;
using Histo.Slides;
using static TorchSharp.torch;

namespace Histo.Tests;

public class EmbeddingTests(SyntheticSlideFixture fixture) : IClassFixture<SyntheticSlideFixture>
{
    static string Golden(string file) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", file);

    [Fact]
    public void ClamAndFloat16FeatureFilesWrittenByH5pyAreRead()
    {
        var clam = PatchFeatures.Read(Golden("clam-features.h5"));
        var expected = File.ReadAllLines(Golden("clam-features.txt"))
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(float.Parse).ToArray()).ToArray();
        Assert.Equal((5, 8), (clam.Count, clam.Dim));
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 8; j++) Assert.Equal(expected[i][j], clam.Features[i, j], 5);
        Assert.Equal(256L * 9, clam.Coords[4, 1]);
        var half = PatchFeatures.Read(Golden("float16-features.h5"));
        Assert.Equal(expected[2][3], half.Features[2, 3], 2);
        Assert.Equal(256L * 8, half.Coords[4, 0]);
    }

    [Fact]
    public void FeaturesRoundTripWithEmptyBags()
    {
        using var dir = new TempDir();
        var f = new PatchFeatures("s", new float[0, 16], new long[0, 2], "x", 256, 0.5);
        f.Write(dir["s.h5"]);
        var back = PatchFeatures.Read(dir["s.h5"]);
        Assert.Equal((0, 16), (back.Count, back.Dim));
    }

    [Fact]
    public void EmbedWritesOneFeatureRowPerPatchAndResumes()
    {
        using var outDir = new TempDir();
        var tiled = TilingJob.Run(new TilingJobOptions { Slides = [fixture.SlidePath], OutputDir = outDir["tiles"],
            Tiling = new TilingOptions { TargetMpp = 1.0, PatchSize = 112 } }).Single();
        Assert.InRange(tiled.Patches, 3, 60);
        var options = new EmbeddingJobOptions { Slides = [fixture.SlidePath], CoordsDir = outDir["tiles"], OutputDir = outDir["emb"],
            BatchSize = 4 };
        var outcome = EmbeddingJob.Run(options).Single();
        Assert.Equal(SlideStatus.Done, outcome.Status);
        var features = PatchFeatures.Read(outDir[$"emb/features/{fixture.Spec.SlideId}.h5"]);
        var coords = PatchCoordinates.Read(outDir[$"tiles/coords/{fixture.Spec.SlideId}.h5"]);
        Assert.Equal((coords.Count, 512), (features.Count, features.Dim));
        Assert.Equal(coords.Coords, features.Coords);
        Assert.Equal("resnet18-imagenet", features.Encoder);
        Assert.All(Enumerable.Range(0, features.Count), i => Assert.True(float.IsFinite(features.Features[i, 0])));
        // Batching does not change features: the first patch alone gives the same row.
        using (var encoder = EncoderRegistry.Create(EncoderRegistry.Default))
        using (var slide = WholeSlide.Open(fixture.SlidePath))
        {
            var single = EmbeddingJob.EmbedSlide(slide, coords with { Coords = new long[,] { { coords.Coords[0, 0], coords.Coords[0,
                1] } } },
                encoder, options with { BatchSize = 1 }, null, out _);
            for (int j = 0; j < 512; j++) Assert.Equal(features.Features[0, j], single[0, j], 4);
        }
        Assert.Equal(SlideStatus.Skipped, EmbeddingJob.Run(options).Single().Status);
        // Another encoder into the same folder: refused before any slide, naming the difference (issue 10, item 6).
        var other = Assert.Throws<HistoException>(() => EmbeddingJob.Run(options with { Encoder = "vit-tiny" })).Message;
        Assert.Contains("Encoder \"resnet18-imagenet\" -> \"vit-tiny\"", other);
        Assert.Contains("--overwrite", other);
    }

    [Fact]
    public void ATruncatedFeaturesFileIsEmbeddedAgainAndReported()
    {
        // Issue 10, item 19: a 0-byte or cut-off features file used to stop the batch with "re-run histo embed".
        using var outDir = new TempDir();
        TilingJob.Run(new TilingJobOptions { Slides = [fixture.SlidePath], OutputDir = outDir["tiles"],
            Tiling = new TilingOptions { TargetMpp = 4.0, PatchSize = 64 } });
        var options = new EmbeddingJobOptions { Slides = [fixture.SlidePath], CoordsDir = outDir["tiles"], OutputDir = outDir["emb"],
            Encoder = "resnet18" };
        Assert.Equal(SlideStatus.Done, EmbeddingJob.Run(options).Single().Status);
        string file = outDir[$"emb/features/{fixture.Spec.SlideId}.h5"];
        var whole = File.ReadAllBytes(file);
        foreach (var damaged in new[] { Array.Empty<byte>(), whole[..(whole.Length / 2)] })
        {
            File.WriteAllBytes(file, damaged);
            var notes = new List<string>();
            Assert.Equal(SlideStatus.Done, EmbeddingJob.Run(options, log: notes.Add).Single().Status);
            Assert.Contains(notes, n => n.Contains("damaged or truncated") && n.Contains(file));
            Assert.Equal(whole.Length, new FileInfo(file).Length);
        }
    }

    [Fact]
    public void MissingCoordinatesAndNonFiniteFeaturesFailTheSlideByName()
    {
        using var outDir = new TempDir();
        var missing = EmbeddingJob.Run(new EmbeddingJobOptions { Slides = [fixture.SlidePath], CoordsDir = outDir.Path,
            OutputDir = outDir["emb"] }).Single();
        Assert.Contains("histo tile", missing.Error);

        TilingJob.Run(new TilingJobOptions { Slides = [fixture.SlidePath], OutputDir = outDir["tiles"],
            Tiling = new TilingOptions { TargetMpp = 4.0, PatchSize = 64 } });
        // A ResNet-18 checkpoint with a NaN weight: the slide fails, naming the patch, and leaves no file.
        using (var resnet = new ResNet(ResNetConfig.ResNet18))
        {
            var sd = resnet.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
            using (no_grad()) sd["layer4.1.conv2.weight"].index_put_(float.NaN, 0, 0, 0, 0);
            TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(outDir["nan.pt"], sd);
        }
        var nan = EmbeddingJob.Run(new EmbeddingJobOptions { Slides = [fixture.SlidePath], CoordsDir = outDir["tiles"],
            OutputDir = outDir["emb2"], Encoder = outDir["nan.pt"] }).Single();
        Assert.Equal(SlideStatus.Failed, nan.Status);
        Assert.Contains("non-finite", nan.Error);
        Assert.Contains("patch 0", nan.Error);
        Assert.False(File.Exists(outDir[$"emb2/features/{fixture.Spec.SlideId}.h5"]));
    }
}

/// <summary>
/// A card row end to end: `histo embed --encoder ctranspath --weights FILE` on 112 px patches, which the row resizes to 224
/// as its card does; the features file records the weights' SHA-256 (as sha256sum prints it), the precision, the input size
/// and the transform, and a second run with other weights into the same folder is refused.
/// </summary>
public class CardRowEmbeddingTests(SyntheticSlideFixture slide) : IClassFixture<SyntheticSlideFixture>
{
    [Fact]
    public void CTransPathRowEmbedsAndRecordsItsProvenance()
    {
        using var dir = new TempDir();
        var tiled = TilingJob.Run(new TilingJobOptions { Slides = [slide.SlidePath], OutputDir = dir["tiles"],
            Tiling = new TilingOptions { TargetMpp = 1.0, PatchSize = 112 } }).Single();
        Assert.InRange(tiled.Patches, 3, 60);
        using (var network = new SwinTransformer(SwinConfig.CTransPath))
            TorchSharp.PyBridge.Safetensors.SaveStateDict(dir["ctranspath.safetensors"], network.state_dict());
        var (code, _, stderr) = Cli.Run("embed", slide.SlidePath, "--coords", dir["tiles"], "-o", dir["emb"], "--encoder", "ctranspath",
            "--weights", dir["ctranspath.safetensors"], "--batch-size", "4");
        Assert.True(code == 0, stderr);
        string file = dir[$"emb/features/{slide.Spec.SlideId}.h5"];
        var features = PatchFeatures.Read(file);
        Assert.Equal((tiled.Patches, 768), (features.Count, features.Dim));
        using var h5 = PureHDF.H5File.OpenRead(file);
        var attributes = h5.Dataset("features");
        string Text(string name) => attributes.Attribute(name).Read<string>();
        var sha = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sha256sum", dir["ctranspath.safetensors"])
            { RedirectStandardOutput = true })!;
        Assert.Equal(sha.StandardOutput.ReadToEnd().Split(' ')[0], Text("weights_sha256"));
        Assert.Equal("fp32", Text("precision"));    // TRIDENT runs CTransPath in fp32
        Assert.Equal(224L, attributes.Attribute("input_size").Read<long>());
        Assert.StartsWith("resize 224 bilinear, mean 0.485,0.456,0.406", Text("transform"));
        Assert.False(string.IsNullOrEmpty(Text("histo_version")));
        // Other weights into the same folder: refused, not mixed.
        using (var network = new SwinTransformer(SwinConfig.CTransPath))
            TorchSharp.PyBridge.Safetensors.SaveStateDict(dir["other.safetensors"], network.state_dict());
        (code, _, stderr) = Cli.Run("embed", slide.SlidePath, "--coords", dir["tiles"], "-o", dir["emb"], "--encoder", "ctranspath",
            "--weights", dir["other.safetensors"]);
        Assert.Equal(1, code);
        Assert.Contains("WeightsSha256", stderr);
    }
}

/// <summary>`histo embed --stain-norm`: the patches are normalised before the encoder, the method and target are recorded,
/// a different normalisation into the same folder is refused, and bad option pairs are refused before anything is written.</summary>
public class StainNormEmbeddingTests(SyntheticSlideFixture slide) : IClassFixture<SyntheticSlideFixture>
{
    [Fact]
    public void EmbedWithStainNormalisationRecordsItAndRefusesAnother()
    {
        using var dir = new TempDir();
        TilingJob.Run(new TilingJobOptions { Slides = [slide.SlidePath], OutputDir = dir["tiles"],
            Tiling = new TilingOptions { TargetMpp = 1.0, PatchSize = 112 } }).Single();
        var coords = PatchCoordinates.Read(dir[$"tiles/coords/{slide.Spec.SlideId}.h5"]);
        using (var wsi = WholeSlide.Open(slide.SlidePath))
            Tiler.ReadPatch(wsi, coords, coords.Coords[0, 0], coords.Coords[0, 1], 224).Save(dir["target.png"]);
        var (code, _, stderr) = Cli.Run("embed", slide.SlidePath, "--coords", dir["tiles"], "-o", dir["emb"], "--stain-norm", "macenko",
            "--stain-target", dir["target.png"]);
        Assert.True(code == 0, stderr);
        var plain = PatchFeatures.Read(dir[$"emb/features/{slide.Spec.SlideId}.h5"]);
        using (var h5 = PureHDF.H5File.OpenRead(dir[$"emb/features/{slide.Spec.SlideId}.h5"]))
            Assert.StartsWith("stain normalisation macenko to target.png", h5.Dataset("features").Attribute("transform").Read<string>());
        (code, _, stderr) = Cli.Run("embed", slide.SlidePath, "--coords", dir["tiles"], "-o", dir["emb"], "--stain-norm", "reinhard",
            "--stain-target", dir["target.png"]);
        Assert.Equal(1, code);
        Assert.Contains("StainNorm", stderr);
        // Without normalisation the features differ (the patches were changed before the encoder).
        (code, _, stderr) = Cli.Run("embed", slide.SlidePath, "--coords", dir["tiles"], "-o", dir["plain"]);
        Assert.True(code == 0, stderr);
        var unnormalised = PatchFeatures.Read(dir[$"plain/features/{slide.Spec.SlideId}.h5"]);
        Assert.NotEqual(plain.Features[0, 0], unnormalised.Features[0, 0]);
        // A missing target: one line naming it, no output folder; a method without a target: a usage error.
        (code, _, stderr) = Cli.Run("embed", slide.SlidePath, "--coords", dir["tiles"], "-o", dir["none"], "--stain-norm", "macenko",
            "--stain-target", dir["missing.png"]);
        Assert.Equal(1, code);
        Assert.Contains("missing.png: image not found", stderr);
        Assert.False(Directory.Exists(dir["none"]));
        (code, _, _) = Cli.Run("embed", slide.SlidePath, "--coords", dir["tiles"], "-o", dir["none"], "--stain-norm", "macenko");
        Assert.Equal(2, code);
    }
}
