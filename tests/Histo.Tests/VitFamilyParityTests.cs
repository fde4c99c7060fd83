using System.Text.Json;
using Histo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// The timm-layout ViTs of the pathology foundation models (LayerScale, SwiGLUPacked, registers, no_embed_class,
/// position-embedding resampling, class / class + patch-mean pooling) against PyTorch: tools/reference/vit_family_reference.py
/// saves seeded random weights under timm's names as pytorch_model.bin or safetensors files and the features of a formula
/// input at the pretraining size and one other; Histo loads each file strictly and must agree to 1e-4 of the feature scale.
/// </summary>
public class VitFamilyParityTests
{
    static string Golden(string file) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", file);

    public static TheoryData<string> Rows => new() { "uni", "uni2-h", "virchow", "virchow2" };

    internal static ViTConfig Config(JsonElement row, string name) => new(name, row.GetProperty("dim").GetInt32(),
        row.GetProperty("depth").GetInt32(), row.GetProperty("heads").GetInt32(), row.GetProperty("patch").GetInt32(),
        row.GetProperty("img").GetInt32(), row.GetProperty("mlp_ratio").GetDouble())
    {
        Mlp = row.TryGetProperty("mlp", out var mlp) && mlp.GetString() == "swiglu-packed" ? ViTMlp.SwiGluPacked : ViTMlp.Gelu,
        LayerScaleInit = row.TryGetProperty("init_values", out var ls) ? ls.GetDouble() : null,
        RegisterTokens = row.TryGetProperty("reg_tokens", out var reg) ? reg.GetInt32() : 0,
        NoEmbedClass = row.TryGetProperty("no_embed_class", out var nec) && nec.GetBoolean(),
        Pooling = row.GetProperty("pool").GetString() == "token" ? ViTPooling.Cls : ViTPooling.ClsAndPatchMean,
        AntialiasPositions = true,
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public void FeaturesMatchTimmSemantics(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden("vit-family-golden.json")));
        var row = doc.RootElement.GetProperty(name);
        using var model = new VisionTransformer(Config(row, name));
        var weights = Checkpoint.Read(Golden(row.GetProperty("file").GetString()!));
        try { WeightLoading.Load(model, weights, name); }
        finally { foreach (var t in weights.Values) t.Dispose(); }
        ParityFormulas.AssertFormulaFeatures(model, row.GetProperty("outputs"), name);
    }

    // A checkpoint with one tensor renamed or reshaped is refused, naming that tensor and its shapes.
    [Fact]
    public void RenamedOrReshapedTensorIsNamed()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden("vit-family-golden.json")));
        var row = doc.RootElement.GetProperty("uni2-h");
        using var model = new VisionTransformer(Config(row, "uni2-h"));
        var weights = Checkpoint.Read(Golden(row.GetProperty("file").GetString()!));
        try
        {
            var renamed = new Dictionary<string, Tensor>(weights);
            renamed["blocks.1.ls2.scale"] = renamed["blocks.1.ls2.gamma"];
            renamed.Remove("blocks.1.ls2.gamma");
            var message = Assert.Throws<HistoException>(() => WeightLoading.Load(model, renamed, "uni2-h.safetensors")).Message;
            Assert.Contains("missing blocks.1.ls2.gamma [32]", message);
            Assert.Contains("unexpected blocks.1.ls2.scale [32]", message);
            var reshaped = new Dictionary<string, Tensor>(weights) { ["reg_token"] = zeros(1, 4, 32) };
            message = Assert.Throws<HistoException>(() => WeightLoading.Load(model, reshaped, "uni2-h.safetensors")).Message;
            Assert.Contains("reg_token: checkpoint has [1, 4, 32], model needs [1, 8, 32]", message);
        }
        finally { foreach (var t in weights.Values) t.Dispose(); }
    }
}

/// <summary>The foundation models' rows through the CLI: listed with their published feature sizes, refused without weights.</summary>
public class FoundationModelCliTests
{
    [Fact]
    public void EncodersListsTheFoundationModelsWithTheirCards()
    {
        var (code, stdout, _) = Cli.Run("encoders");
        Assert.Equal(0, code);
        // Feature sizes from the model cards: UNI 1024, UNI2-h 1536, Virchow and Virchow2 2560 (class token + patch mean),
        // H-optimus-0 and GigaPath 1536.
        // CTransPath 768 (Swin-T's last stage).
        const string hub = "https://huggingface.co/";
        foreach (var (name, dim, card) in new[] { ("uni", 1024, hub + "MahmoodLab/UNI"), ("uni2-h", 1536, hub + "MahmoodLab/UNI2-h"),
            ("virchow", 2560, hub + "paige-ai/Virchow"), ("virchow2", 2560, hub + "paige-ai/Virchow2"),
            ("h-optimus-0", 1536, hub + "bioptimus/H-optimus-0"), ("gigapath", 1536, hub + "prov-gigapath/prov-gigapath"),
            ("ctranspath", 768, "https://github.com/Xiyue-Wang/TransPath") })
        {
            var cells = stdout.Split('\n').Select(l => l.TrimEnd('\r').Split('\t')).First(c => c[0] == name);
            Assert.Equal($"{dim}", cells[1]);
            Assert.Equal("224", cells[2]);
            Assert.Equal($"--weights FILE from {card}", cells[3]);
        }
        // Parameter counts against published ones: timm lists vit_large_patch16_224 at 304.33M with its 1,000-class head
        // (1.03M), so UNI (plus LayerScale, 0.05M) has 303.35M; torchvision's ResNet-50 has 25.56M with its 2.05M head and CLAM's
        // truncated one 8.54M; CTransPath's paper gives 27.5M.
        var rows = stdout.Split('\n').Select(l => l.TrimEnd('\r').Split('\t')).ToList();
        string Column(string name, string column) => rows.First(c => c[0] == name)[Array.IndexOf(rows[0], column)];
        Assert.Equal("303.4M", Column("uni", "parameters"));
        Assert.Equal("23.5M", Column("resnet50", "parameters"));
        Assert.Equal("27.5M", Column("ctranspath", "parameters"));
        Assert.Equal("resize 256 bicubic, center crop 224, mean 0.485,0.456,0.406 std 0.229,0.224,0.225", Column("gigapath", "transform"));
        Assert.StartsWith("bf16", Column("uni", "precision"));
        Assert.Equal("fp32", Column("phikon", "precision"));
    }

    [Fact]
    public void GatedEncoderWithoutWeightsNamesItsModelCard()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["slide.svs"], []);
        Directory.CreateDirectory(dir["tiles"]);
        var (code, _, stderr) = Cli.Run("embed", dir["slide.svs"], "--coords", dir["tiles"], "-o", dir["emb"], "--encoder", "uni");
        Assert.Equal(1, code);
        Assert.Contains("--encoder uni needs its weights", stderr);
        Assert.Contains("https://huggingface.co/MahmoodLab/UNI", stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.False(Directory.Exists(dir["emb"]), "a refused encoder leaves no output folder");
        // A weights file that is not the model's: every mis-shaped tensor is named (the reduced test file against ViT-L/16).
        (code, _, stderr) = Cli.Run("embed", dir["slide.svs"], "--coords", dir["tiles"], "-o", dir["emb"], "--encoder", "vit-tiny",
            "--weights", Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", "vit-uni.bin"));
        Assert.Equal(1, code);
        Assert.Contains("pos_embed: checkpoint has [1, 197, 32], model needs [1, 197, 192]", stderr);
    }

    // A lab's weights configured once (TRIDENT's local_ckpts.json habit): listed by `histo encoders`, used by `histo embed`
    // when --weights is not given, relative paths taken from the config's folder.
    [Fact]
    public void WeightsConfigIsListedAndUsed()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["models"]);
        File.WriteAllBytes(dir["models/uni.bin"], [1, 2, 3]);
        File.WriteAllText(dir["models/weights.json"], "{\"uni\": \"uni.bin\"}");
        var (code, stdout, _) = Cli.Run("encoders", "--weights-config", dir["models/weights.json"]);
        Assert.Equal(0, code);
        var cells = stdout.Split('\n').Select(l => l.TrimEnd('\r').Split('\t')).ToList();
        Assert.Equal(dir["models/uni.bin"], cells.First(c => c[0] == "uni")[4]);
        Assert.Equal("", cells.First(c => c[0] == "virchow")[4]);
        File.WriteAllBytes(dir["slide.svs"], []);
        Directory.CreateDirectory(dir["tiles"]);
        string stderr;
        (code, _, stderr) = Cli.Run("embed", dir["slide.svs"], "--coords", dir["tiles"], "-o", dir["emb"], "--encoder", "uni",
            "--weights-config", dir["models/weights.json"]);
        Assert.Equal(1, code);
        Assert.Contains($"{dir["models/uni.bin"]}: not a readable safetensors or PyTorch state dict", stderr);
        File.WriteAllText(dir["models/weights.json"], "{\"uni\": \"missing.bin\"}");
        (code, _, stderr) = Cli.Run("embed", dir["slide.svs"], "--coords", dir["tiles"], "-o", dir["emb"], "--encoder", "uni",
            "--weights-config", dir["models/weights.json"]);
        Assert.Equal(1, code);
        Assert.Contains("the weights of uni", stderr);
        Assert.Contains("missing.bin, do not exist", stderr);
    }
}

/// <summary>
/// CTransPath's Swin-T with its convolutional stem against PyTorch: tools/reference/swin_ctranspath_reference.py builds it
/// from timm 0.5.4's swin_transformer.py semantics at reduced width (16, depths 2-2-2-2, heads 1-2-4-8), saves seeded random
/// weights as CTransPath's file is saved ({'model': state_dict}, relative-position indices and attention masks included, no
/// head), and its features at 224 px and 448 px (where every shifted block needs a new mask). Loaded through the ctranspath
/// row's conversion, Histo must agree to 1e-4 of the feature scale.
/// </summary>
public class CTransPathParityTests
{
    static string Golden(string file) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", file);

    [Fact]
    public void FeaturesMatchTimmSwin()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden("ctranspath-golden.json")));
        var c = doc.RootElement.GetProperty("config");
        int[] Ints(string key) => c.GetProperty(key).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var config = new SwinConfig("ctranspath-mini", c.GetProperty("embed_dim").GetInt32(), Ints("depths"), Ints("num_heads"),
            c.GetProperty("window_size").GetInt32(), c.GetProperty("img_size").GetInt32(), c.GetProperty("mlp_ratio").GetDouble());
        Assert.Equal(c.GetProperty("num_features").GetInt32(), config.FeatureDim);
        using var model = new SwinTransformer(config);
        var file = Golden(doc.RootElement.GetProperty("file").GetString()!);
        var read = Checkpoint.Read(file);
        Assert.Contains(read.Keys, k => k.EndsWith(".attn_mask"));    // the file is as timm saves it, masks and all
        var weights = FoundationModels.All.Single(e => e.Name == "ctranspath").ConvertWeights(read);
        try { WeightLoading.Load(model, weights, file, ignore: n => n.EndsWith("num_batches_tracked")); }
        finally { foreach (var t in read.Values) t.Dispose(); }
        ParityFormulas.AssertFormulaFeatures(model, doc.RootElement.GetProperty("outputs"), "CTransPath");
        // A side that the windows do not tile is refused with what to use instead, not padded silently.
        using var odd = zeros(1, 3, 256, 256);
        using var _ = no_grad();
        var message = Assert.Throws<HistoException>(() => model.forward(odd)).Message;
        Assert.Contains("use a multiple of 224 px", message);
    }
}

/// <summary>
/// The other ways ViT weights are published, against PyTorch modules written from transformers' and DINOv2's code
/// (tools/reference/hf_vit_reference.py, width 32, depth 2): Phikon's Hugging Face ViTModel safetensors (separate q, k, v,
/// LayerNorm eps 1e-12, a pooler that is not used), Phikon-v2's Dinov2Model (layer_scale lambda1, mask token), a raw DINOv2
/// hub checkpoint (w12/w3 SwiGLU, register_tokens, the class position inside pos_embed) and H0-mini's timm file. Each is
/// loaded through the layout conversion every ViT row uses and must agree to 1e-4 of the feature scale at 224 px and one
/// other size. At the other size the Hugging Face rows follow current transformers (positions resized to the grid,
/// 'outputs_size'), not the +0.1 scale-factor rule of transformers 4.4x and older.
/// </summary>
public class PublishedVitLayoutTests
{
    static string Golden(string file) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", file);

    public static TheoryData<string, string, bool> Rows => new()
    {
        { "phikon", "outputs_size", false }, { "phikon-v2", "outputs_size", false }, { "dinov2-raw", "outputs", false },
        { "h0-mini", "outputs", true }, { "h0-mini", "outputs_cls", false },
    };

    static ViTConfig Config(JsonElement row, bool clsAndMean)
    {
        int dim = row.GetProperty("dim").GetInt32(), hidden = row.GetProperty("hidden").GetInt32();
        string mlp = row.GetProperty("mlp").GetString()!;
        // The fused DINOv2 SwiGLU's gated width is 'hidden'; fc1 holds both halves.
        int fc1 = mlp == "swiglu-fused" ? 2 * hidden : hidden;
        bool registers = row.GetProperty("registers").GetInt32() > 0;
        return new ViTConfig(row.GetProperty("layout").GetString()!, dim, row.GetProperty("depth").GetInt32(),
            row.GetProperty("heads").GetInt32(), row.GetProperty("patch").GetInt32(), row.GetProperty("img").GetInt32(),
            fc1 / (double)dim)
        {
            Mlp = mlp.StartsWith("swiglu") ? ViTMlp.SwiGluPacked : ViTMlp.Gelu,
            LayerScaleInit = row.GetProperty("layer_scale").ValueKind == JsonValueKind.Null ? null : 1e-5,
            LayerNormEps = row.GetProperty("eps").GetDouble(),
            RegisterTokens = row.GetProperty("registers").GetInt32(),
            NoEmbedClass = registers,                       // timm's reg4 models; raw DINOv2 is converted to that
            AntialiasPositions = registers,                 // timm and DINOv2's _reg hub models antialias; transformers does not
            Pooling = clsAndMean ? ViTPooling.ClsAndPatchMean : ViTPooling.Cls,
        };
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void FeaturesMatchThePublishedCode(string name, string outputs, bool clsAndMean)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden("hf-vit-golden.json")));
        var row = doc.RootElement.GetProperty(name);
        var config = Config(row, clsAndMean);
        using var model = new VisionTransformer(config);
        var file = Golden(row.GetProperty("file").GetString()!);
        var read = Checkpoint.Read(file);
        var weights = ViTLayouts.ToTimm(read, config);
        try { WeightLoading.Load(model, weights, file); }
        finally { foreach (var t in read.Values.Concat(weights.Values)) t.Dispose(); }
        ParityFormulas.AssertFormulaFeatures(model, row.GetProperty(outputs), name);
    }
}

/// <summary>
/// Real tiles through a card's whole input pipeline (tools/reference/real_tile_reference.py: PIL, torchvision's Resize and
/// CenterCrop, ToTensor, Normalize, then the reduced timm ViTs): the shared data's NCT-CRC-HE tiles, loaded by Histo and fed
/// through a PatchEncoder whose spec carries the same transform, must give the same features to 1e-4 of the feature scale
/// (measured: 1.9e-5 and 8.5e-5; PIL's fixed-point resampling leaves a pixel off by a level here and there).
/// </summary>
public class SharedData_RealTileParityTests
{
    static string Golden(string file) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", file);

    public static TheoryData<string, int, int, bool> Cases => new()
    {
        { "uni-gigapath-transform", 256, 224, true }, { "virchow-resize-168", 168, 168, true },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void SharedData_RealTilesMatchTorchvisionAndTimm(string name, int resize, int crop, bool bicubic)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden("real-tile-golden.json")));
        var entry = doc.RootElement.GetProperty(name);
        string row = entry.GetProperty("row").GetString()!;
        using var family = JsonDocument.Parse(File.ReadAllText(Golden("vit-family-golden.json")));
        var rowConfig = family.RootElement.GetProperty(row);
        var config = VitFamilyParityTests.Config(rowConfig, row);
        var network = new VisionTransformer(config);
        var weights = Checkpoint.Read(Golden(rowConfig.GetProperty("file").GetString()!));
        try { WeightLoading.Load(network, weights, row); }
        finally { foreach (var t in weights.Values) t.Dispose(); }
        var spec = new EncoderSpec(row, "reduced test model", crop, config.FeatureDim, InputNormalization.ImageNet, () => network, "test")
        {
            Transform = new CardTransform(resize, crop, bicubic ? InterpolationMode.Bicubic : InterpolationMode.Bilinear),
        };
        using var encoder = new PatchEncoder(spec, network);
        var tiles = doc.RootElement.GetProperty("tiles").EnumerateArray()
            .Select(t => Histo.Imaging.RgbaImage.Load(SharedData.Path_("nct-crc-samples", t.GetString()!))).ToList();
        int side = tiles[0].Width;
        using var batch = tensor(tiles.SelectMany(t => t.Pixels).ToArray(), [tiles.Count, side, side, 4]);
        using var features = encoder.Embed(batch);
        var ours = features.data<float>().ToArray();
        var expected = entry.GetProperty("features").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Assert.Equal(expected.Length, ours.Length);
        double scale = Math.Max(1, expected.Max(Math.Abs));
        double worst = expected.Zip(ours).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst <= 1e-4 * scale, $"{name}: max |difference| {worst:E2} (feature scale {scale:F2})");
    }
}
