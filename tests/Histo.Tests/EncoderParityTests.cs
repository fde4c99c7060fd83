using System.Text.Json;
using Histo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// Histo's TorchSharp encoders against PyTorch (tools/reference/encoders_reference.py, golden outputs
/// committed): the same formula weights and input on both sides must give the same features to 1e-4.
/// </summary>
public class EncoderParityTests
{
    static string Golden(string file) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", file);

    /// <summary>The reference script's weights: tensor k (sorted names), element j: 0.05 sin(0.37 j + 1.3 k); norm scales and running variances 1 + 0.1 sin(...).</summary>
    static void FormulaFill(nn.Module module)
    {
        var sd = module.state_dict();
        var names = sd.Keys.OrderBy(n => n, StringComparer.Ordinal).ToList();
        using var _ = no_grad();
        for (int k = 0; k < names.Count; k++)
        {
            string name = names[k];
            if (name.EndsWith("num_batches_tracked")) continue;
            var t = sd[name];
            var parts = name.Split('.');
            string leaf = parts.Length > 1 ? parts[^2] : name;
            bool normScale = name.EndsWith(".weight") && (leaf.StartsWith("bn") || leaf.StartsWith("norm") || name.EndsWith("downsample.1.weight"));
            using var j = arange(t.numel(), dtype: ScalarType.Float64);
            using var v = sin(0.37 * j + 1.3 * k);
            using var filled = name.EndsWith("running_var") || normScale ? 1 + 0.1 * v : 0.05 * v;
            t.copy_(filled.reshape(t.shape).to_type(t.dtype));
        }
    }

    static Tensor FormulaInput(int batch, int size)
    {
        using var j = arange(batch * 3 * size * size, dtype: ScalarType.Float64);
        return sin(0.01 * j).reshape(batch, 3, size, size).to_type(ScalarType.Float32);
    }

    static void AssertClose(float[] expected, Tensor actual, string what)
    {
        var ours = actual.data<float>().ToArray();
        Assert.Equal(expected.Length, ours.Length);
        double scale = Math.Max(1, expected.Max(Math.Abs));
        double worst = expected.Zip(ours).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst <= 1e-4 * scale, $"{what}: max |difference| {worst:E2} (output scale {scale:F2})");
    }

    public static TheoryData<string> Cases => new() { "resnet18", "resnet50", "resnet50-trunc", "vit-tiny", "vit-tiny@160" };

    [Theory]
    [MemberData(nameof(Cases))]
    public void OutputsMatchPyTorch(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden("encoders-golden.json")));
        var entry = doc.RootElement.GetProperty(name);
        int size = entry.GetProperty("input_size").GetInt32();
        var expected = entry.GetProperty("output").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        using nn.Module<Tensor, Tensor> model = name.Split('@')[0] switch
        {
            "resnet18" => new ResNet(ResNetConfig.ResNet18),
            "resnet50" => new ResNet(ResNetConfig.ResNet50),
            "resnet50-trunc" => new ResNet(ResNetConfig.ResNet50Trunc),
            _ => new VisionTransformer(ViTConfig.Tiny),
        };
        FormulaFill(model);
        model.eval();
        using var _ = no_grad();
        using var input = FormulaInput(2, size);
        using var output = model.forward(input);
        Assert.Equal(entry.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()), output.shape);
        AssertClose(expected, output, name);
        // As PatchEncoder runs a ResNet: batch norms folded into the convolutions, the same features.
        if (model is ResNet resnet)
        {
            resnet.FuseBatchNorm();
            using var fused = resnet.forward(input);
            AssertClose(expected, fused, name + " with batch norms folded");
        }
    }

    [Fact]
    public void PyTorchCheckpointLoadsByNameAndReproducesItsOutput()
    {
        var tensors = Checkpoint.Read(Golden("vit-micro.pt"));
        using var model = new VisionTransformer(new ViTConfig("vit-micro", 32, 2, 2, PatchSize: 16, ImageSize: 32));
        WeightLoading.Load(model, tensors, "vit-micro.pt");
        model.eval();
        using var _ = no_grad();
        using var input = FormulaInput(2, 32);
        using var output = model.forward(input);
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden("vit-micro-output.json")));
        AssertClose(doc.RootElement.GetProperty("output").EnumerateArray().Select(e => e.GetSingle()).ToArray(), output, "vit-micro");
    }

    [Fact]
    public void MismatchedCheckpointIsReportedByNameAndShape()
    {
        var tensors = Checkpoint.Read(Golden("vit-micro.pt"));
        tensors.Remove("norm.bias");
        tensors["blocks.0.mlp.fc1.weight"] = zeros(7, 32);
        tensors["extra.weight"] = zeros(3);
        using var model = new VisionTransformer(new ViTConfig("vit-micro", 32, 2, 2, PatchSize: 16, ImageSize: 32));
        var e = Assert.Throws<HistoException>(() => WeightLoading.Load(model, tensors, "vit-micro.pt"));
        Assert.Contains("missing norm.bias [32]", e.Message);
        Assert.Contains("blocks.0.mlp.fc1.weight: checkpoint has [7, 32], model needs [128, 32]", e.Message);
        Assert.Contains("unexpected extra.weight [3]", e.Message);
    }

    [Fact]
    public void WrapperPrefixesAreStripped()
    {
        var tensors = new Dictionary<string, Tensor> { ["module.backbone.conv1.weight"] = zeros(1), ["module.backbone.fc.bias"] = zeros(1) };
        var stripped = Checkpoint.StripPrefixes(tensors);
        Assert.Equal(["conv1.weight", "fc.bias"], stripped.Keys.Order());
    }

    [Fact]
    public void CheckpointFileIsRecognisedAsItsArchitecture()
    {
        // A torchvision-style ResNet-18 checkpoint (with its classifier) saved by TorchSharp in PyTorch's format.
        using var dir = new TempDir();
        using (var resnet = new ResNet(ResNetConfig.ResNet18))
        {
            FormulaFill(resnet);
            var sd = resnet.state_dict().ToDictionary(kv => "module." + kv.Key, kv => kv.Value);
            sd["module.fc.weight"] = zeros(1000, 512);
            sd["module.fc.bias"] = zeros(1000);
            TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(dir["resnet18.pt"], sd);
        }
        using var encoder = EncoderRegistry.Create(dir["resnet18.pt"]);
        Assert.Equal("resnet18", encoder.Spec.Name);
        Assert.Equal(512, encoder.FeatureDim);
        var e = Assert.Throws<HistoException>(() => EncoderRegistry.Create(Golden("vit-micro.pt")));
        Assert.Contains("fits no registered architecture", e.Message);
    }

    [Fact]
    public void SafetensorsCheckpointLoadsByName()
    {
        using var dir = new TempDir();
        var tensors = Checkpoint.Read(Golden("vit-micro.pt"));
        TorchSharp.PyBridge.Safetensors.SaveStateDict(dir["vit-micro.safetensors"], tensors.ToDictionary(kv => "model." + kv.Key, kv => kv.Value));
        var back = Checkpoint.Read(dir["vit-micro.safetensors"]);
        Assert.Equal(tensors.Keys.Order(), back.Keys.Order());
        using var model = new VisionTransformer(new ViTConfig("vit-micro", 32, 2, 2, PatchSize: 16, ImageSize: 32));
        WeightLoading.Load(model, back, "vit-micro.safetensors");
        Assert.True(back["norm.weight"].allclose(tensors["norm.weight"], rtol: 0, atol: 0));
    }

    // CLAM's resnet50_trunc takes the torchvision ResNet-50 file users have: its layer4 and fc are left unused, as CLAM's
    // load_state_dict(strict=False) leaves them; every tensor of the stem and layers 1-3 is the file's. (Its outputs match
    // CLAM's truncated network in OutputsMatchPyTorch("resnet50-trunc").)
    [Fact]
    public void TruncatedResNet50LoadsAFullResNet50File()
    {
        using var dir = new TempDir();
        using var full = new ResNet(ResNetConfig.ResNet50);
        var state = full.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        using (var fc = zeros(1000, 2048)) state["fc.weight"] = fc.clone();
        TorchSharp.PyBridge.Safetensors.SaveStateDict(dir["resnet50.safetensors"], state);
        var error = Assert.Throws<HistoException>(() => EncoderRegistry.Create("resnet50-trunc"));
        Assert.Contains("download.pytorch.org/models/resnet50-19c8e357.pth", error.Message);
        using var trunc = EncoderRegistry.Create("resnet50-trunc", weights: dir["resnet50.safetensors"]);
        Assert.Equal(1024, trunc.FeatureDim);
        var loaded = trunc.Network.state_dict();
        Assert.DoesNotContain(loaded.Keys, k => k.StartsWith("layer4."));
        Assert.All(loaded.Where(kv => kv.Value.dtype == ScalarType.Float32),
            kv => Assert.True(kv.Value.allclose(state[kv.Key], rtol: 0, atol: 0), kv.Key));
    }
}
