using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// Encoders by name (timm's habit: one table of names, each with its input size, normalisation, output
/// dimension and weights). <c>--encoder</c> takes a name from here or the path of a checkpoint
/// (safetensors or PyTorch state dict), whose architecture is recognised from its tensor names and shapes.
/// </summary>
public static class EncoderRegistry
{
    public const string Default = "resnet18-imagenet";

    public static IReadOnlyList<EncoderSpec> All { get; } =
    [
        new(Default,
            "ResNet-18 trained on ImageNet (ML.NET's CNTK export, NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1), moved into "
                + "TorchSharp",
            CntkResNet18.InputSize, 512, new InputNormalization.BgrMeanImage(), () => CntkResNet18.Load(), "ImageNet (ML.NET)"),
        new("resnet18", "torchvision ResNet-18, random initialisation unless weights are given", 224, 512, InputNormalization.ImageNet,
            () => new ResNet(ResNetConfig.ResNet18), "none"),
        new("resnet18-half", "ResNet-18 at half width (a small, fast distillation student), random initialisation unless weights are given",
            224, ResNetConfig.ResNet18Half.FeatureDim, InputNormalization.ImageNet, () => new ResNet(ResNetConfig.ResNet18Half), "none"),
        new("resnet10", "ResNet-10, one basic block per stage (a distillation student), random initialisation unless weights are given",
            224, ResNetConfig.ResNet10.FeatureDim, InputNormalization.ImageNet, () => new ResNet(ResNetConfig.ResNet10), "none"),
        new("resnet50", "torchvision ResNet-50, random initialisation unless weights are given", 224, 2048, InputNormalization.ImageNet,
            () => new ResNet(ResNetConfig.ResNet50), "none"),
        new("vit-tiny", "ViT-Tiny/16 (timm names), random initialisation unless weights are given", 224, 192, InputNormalization.ImageNet,
            () => new VisionTransformer(ViTConfig.Tiny), "none") { Parameters = ViTConfig.Tiny.ParameterCount },
        new("vit-small", "ViT-Small/16 (timm names), random initialisation unless weights are given", 224, 384, InputNormalization.ImageNet,
            () => new VisionTransformer(ViTConfig.Small), "none") { Parameters = ViTConfig.Small.ParameterCount },
        new("vit-tiny-32", "ViT-Tiny with 4 px patches for 32 px images (small tiles, Fashion-MNIST), random initialisation", 32, 192,
            InputNormalization.ImageNet,
            () => new VisionTransformer(ViTConfig.Tiny with { Name = "vit-tiny-32", PatchSize = 4, ImageSize = 32 }), "none"),
        new("vit-micro-32", "ViT-Tiny's width with 4 blocks and 4 px patches for 32 px images (short CPU runs), random initialisation",
            32, 192, InputNormalization.ImageNet,
            () => new VisionTransformer(ViTConfig.Tiny with { Name = "vit-micro-32", Depth = 4, PatchSize = 4, ImageSize = 32 }), "none"),
        .. FoundationModels.All,
    ];

    /// <summary>The parameters of a row's network: from its configuration where the row knows it, else counted on a built one.</summary>
    public static long ParameterCount(EncoderSpec spec)
    {
        if (spec.Parameters is { } known) return known;
        using var network = spec.Create();
        return network.parameters().Sum(p => p.numel());
    }

    public static EncoderSpec Get(string name) => All.FirstOrDefault(e => e.Name == name)
        ?? throw new HistoException($"unknown encoder '{name}'; choose one of {string.Join(", ", All.Select(e => e.Name))}, or give a "
            + $"checkpoint file");

    /// <summary>
    /// A weights file loaded strictly into a network <paramref name="create"/> makes (disposed if it does not fit). The file
    /// is read first, so an unreadable one is reported before a large network is built.
    /// </summary>
    static nn.Module<Tensor, Tensor> LoadFile(Func<nn.Module<Tensor, Tensor>> create, string file, Func<string, bool> ignore,
        Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>>? convert = null)
    {
        var read = Checkpoint.Read(file);
        var tensors = convert is null ? read : convert(read);
        foreach (var (name, t) in read) if (!tensors.TryGetValue(name, out var kept) || !ReferenceEquals(kept, t)) t.Dispose();
        nn.Module<Tensor, Tensor>? network = null;
        try
        {
            network = create();
            WeightLoading.Load(network, tensors, file, strict: true, ignore: ignore);
        }
        catch { network?.Dispose(); throw; }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
        return network;
    }

    /// <summary>Names in checkpoints that belong to a classifier head, not to the backbone.</summary>
    static bool IsHead(string name) => name.StartsWith("fc.") || name.StartsWith("head.") || name.StartsWith("head_drop.");

    /// <summary>
    /// Builds an encoder from a registered name, or from a checkpoint file: the first registered architecture
    /// whose tensors the checkpoint matches by name and shape (classifier heads ignored). A checkpoint that
    /// fits none is reported with its mismatches against the closest architecture.
    /// </summary>
    /// <param name="inputSize">For a registered name: the patch size to embed at instead of the architecture's own (e.g. a
    /// random-initialisation baseline at the size a `histo pretrain` run trained at).</param>
    /// <param name="weights">A weights file (safetensors or a PyTorch state dict) for a registered name, loaded strictly; the
    /// foundation models' rows need one.</param>
    public static PatchEncoder Create(string nameOrPath, ScalarType computeType = ScalarType.Float32, int? inputSize = null,
        string? weights = null)
    {
        var (spec, network) = CreateNetwork(nameOrPath, inputSize, weights);
        return new PatchEncoder(spec, network, computeType);
    }

    /// <summary>
    /// The network of <see cref="Create"/> with its spec, not wrapped for inference: e.g. the starting point of
    /// <c>histo pretrain --init</c>. The spec's name is the architecture's registered name.
    /// </summary>
    public static (EncoderSpec Spec, nn.Module<Tensor, Tensor> Network) CreateNetwork(string nameOrPath, int? inputSize = null,
        string? weights = null)
    {
        if (All.Any(e => e.Name == nameOrPath))
        {
            var spec = Get(nameOrPath);
            if (weights is null && spec.ModelCard is not null)
                throw new HistoException($"--encoder {spec.Name} needs its weights ({spec.Terms}): accept the terms and download "
                    + $"them at {spec.ModelCard}, then pass --weights FILE (the checkpoint as published: pytorch_model.bin, "
                    + "model.safetensors or .pth)");
            if (weights is null) return (spec with { InputSize = inputSize ?? spec.InputSize }, spec.Create());
            if (!File.Exists(weights)) throw new HistoException($"{weights}: weights file not found (--weights)");
            var network = LoadFile(spec.Create, weights, n => IsHead(n) || n.EndsWith("num_batches_tracked")
                || spec.UnusedWeights.Any(n.StartsWith), spec.ConvertWeights);
            return (spec with { Weights = Path.GetFullPath(weights), InputSize = inputSize ?? spec.InputSize }, network);
        }
        if (weights is not null) throw new UsageException($"--weights goes with a registered --encoder name "
            + $"({string.Join(", ", All.Select(e => e.Name))}), not with '{nameOrPath}'");
        if (Directory.Exists(nameOrPath) && File.Exists(Path.Combine(nameOrPath, SelfSupervised.DinoTraining.EncoderFile)))
        {
            // A `histo pretrain` run: its teacher backbone, by the architecture it records.
            string backbone = Path.Combine(nameOrPath, SelfSupervised.DinoTraining.BackboneFile);
            var info = System.Text.Json.JsonSerializer.Deserialize<SelfSupervised.DinoTraining.EncoderInfo>(
                File.ReadAllText(Path.Combine(nameOrPath, SelfSupervised.DinoTraining.EncoderFile)))!;
            var spec = Get(info.Arch);
            var network = LoadFile(spec.Create, backbone, n => n.EndsWith("num_batches_tracked"));
            // Patches are embedded at the size the run trained its global crops at.
            return (spec with { Weights = Path.GetFullPath(nameOrPath), InputSize = inputSize ?? info.InputSize }, network);
        }
        if (Directory.Exists(nameOrPath) && Distillation.DistilledEncoder.IsRun(nameOrPath))
        {
            // A `histo distill` run: the student and its projection into the teacher's space, at the student's input side.
            var (spec, network) = Distillation.DistilledEncoder.Load(nameOrPath);
            return (spec with { InputSize = inputSize ?? spec.InputSize }, network);
        }
        if (Directory.Exists(nameOrPath) && File.Exists(Path.Combine(nameOrPath, VisionLanguage.ContrastiveModel.ConfigFile)))
        {
            // A `histo clip-train` run: its image tower and projection, so the features are the run's image embeddings, the
            // ones `histo zeroshot --features` pools against its text embeddings.
            var model = VisionLanguage.ContrastiveModel.LoadRun(nameOrPath);
            var spec = Get(model.Config.ImageEncoder);
            return (spec with { Weights = Path.GetFullPath(nameOrPath), InputSize = inputSize ?? model.ImageSize,
                FeatureDim = model.EmbedDim },
                new VisionLanguage.ImageTower(model));
        }
        if (!File.Exists(nameOrPath))
            throw new HistoException($"--encoder '{nameOrPath}' is neither a registered encoder "
                + $"({string.Join(", ", All.Select(e => e.Name))}) nor an existing checkpoint file");
        var tensors = Checkpoint.Read(nameOrPath);
        if (tensors.ContainsKey("visual.conv1.weight") || tensors.ContainsKey("vision_model.embeddings.patch_embedding.weight"))
        {
            // A CLIP checkpoint (OpenAI's or Hugging Face's layout; QuickGELU, as OpenAI CLIP and PLIP): its image tower and
            // projection, with CLIP's preprocessing (bicubic resize of the shorter side, centre crop, CLIP's mean and std).
            var clip = VisionLanguage.ClipModel.Load(tensors, nameOrPath);
            int size = clip.Config.ImageSize;
            var spec = new EncoderSpec($"clip:{Path.GetFileName(nameOrPath)}", "CLIP image tower and projection", size,
                clip.Config.EmbedDim,
                VisionLanguage.ZeroShot.ClipNormalization, () => new VisionLanguage.ImageTower(VisionLanguage.ClipModel.Load(nameOrPath)),
                Path.GetFullPath(nameOrPath)) { Transform = new CardTransform(size, size, InterpolationMode.Bicubic) };
            return (spec, new VisionLanguage.ImageTower(clip));
        }
        try
        {
            HistoException? closest = null;
            int closestMissing = int.MaxValue;
            foreach (var spec in All.Where(e => e.Weights == "none"))
            {
                var network = spec.Create();
                var wanted = network.state_dict();
                int missing = wanted.Keys.Count(k => !tensors.ContainsKey(k) && !k.EndsWith("num_batches_tracked"));
                try
                {
                    WeightLoading.Load(network, tensors, nameOrPath, strict: true, ignore: n => IsHead(n)
                        || n.EndsWith("num_batches_tracked"));
                    return (spec with { Weights = nameOrPath, InputSize = inputSize ?? spec.InputSize }, network);
                }
                catch (HistoException e)
                {
                    network.Dispose();
                    if (missing < closestMissing) { closestMissing = missing; closest = e; }
                }
            }
            throw new HistoException($"{nameOrPath}: fits no registered architecture; closest: {closest!.Message}");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
