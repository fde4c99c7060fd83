using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Histo.Imaging;
using Histo.IO;
using Histo.Models;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Histo.SelfSupervised;

/// <summary>
/// Options of <c>histo pretrain</c>, with DINO's defaults (main_dino.py) where they fit a CPU. Runs are deterministic per
/// seed when nothing else in the process draws from TorchSharp's global generator while networks are built.
/// </summary>
public sealed record DinoOptions
{
    /// <summary>Backbone: vit-tiny, vit-small, resnet18 or resnet50 (random initialisation).</summary>
    public string Arch { get; init; } = "vit-tiny";
    public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 32;
    /// <summary>Head outputs K (65,536 in the paper; much smaller for small data).</summary>
    public int OutDim { get; init; } = 4096;
    /// <summary>Projection head widths (DINO: 2048 hidden, 256 bottleneck).</summary>
    public int HeadHidden { get; init; } = DinoHead.HiddenDim;
    public int HeadBottleneck { get; init; } = DinoHead.BottleneckDim;
    /// <summary>Weight-normalised last layer with its gain fixed at 1 (DINO's default; more stable, slower to sharpen).</summary>
    public bool NormLastLayer { get; init; } = true;
    /// <summary>Base learning rate, scaled by batch / 256 (the linear scaling rule).</summary>
    public double BaseLearningRate { get; init; } = 5e-4;
    public double MinLearningRate { get; init; } = 1e-6;
    public int WarmupEpochs { get; init; } = 10;
    public double WeightDecay { get; init; } = 0.04;
    public double WeightDecayEnd { get; init; } = 0.4;
    public double TeacherMomentum { get; init; } = 0.996;
    public double WarmupTeacherTemperature { get; init; } = 0.04;
    public double TeacherTemperature { get; init; } = 0.04;
    public int WarmupTeacherTemperatureEpochs { get; init; } = 30;
    /// <summary>Each parameter's gradient is clipped to this norm separately (not the global norm).</summary>
    public double ClipGrad { get; init; } = 3.0;
    /// <summary>Epochs during which the head's last layer gets no updates.</summary>
    public int FreezeLastLayerEpochs { get; init; } = 1;
    public int Seed { get; init; } = 0;
    /// <summary>Input image size of the global crops (local crops are 96/224 of it).</summary>
    public DinoAugmentation Augmentation { get; init; } = new();
    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>Reported after every iteration.</summary>
public sealed record DinoProgress(int Epoch, int Epochs, int Iteration, int Iterations, double Loss, double TeacherEntropy, double TeacherMarginalEntropy, double LearningRate);

/// <summary>
/// DINO self-supervised pretraining (Caron et al., ICCV 2021), the whole recipe in one place as in
/// main_dino.py: data (multi-crop views of image patches), networks (student and EMA teacher, backbone +
/// projection head), loss (centering + sharpening), optimiser (AdamW with weight decay only on weights with
/// 2+ dimensions), schedules (lr warm-up + cosine, weight decay cosine 0.04 -> 0.4, teacher momentum cosine
/// 0.996 -> 1, teacher temperature warm-up), resume, and the training loop (per-parameter gradient clipping,
/// last layer frozen in the first epoch, stop on a non-finite loss). The run folder holds a checkpoint per
/// epoch (resumable exactly: every random draw is seeded per epoch and image) and the teacher backbone,
/// loadable as <c>histo embed --encoder RUN</c>.
/// </summary>
public static class DinoTraining
{
    public const string BackboneFile = "teacher_backbone.safetensors";
    public const string EncoderFile = "encoder.json";
    /// <summary>The options a run was started with (and its number of images): a resumed run must use the same.</summary>
    public const string SettingsFile = "settings.json";
    /// <summary>Written last when an epoch is saved: its presence marks a run that can be resumed.</summary>
    const string StateFile = "state.json";

    public sealed record EncoderInfo(string Arch, int InputSize, int FeatureDim);
    sealed record State(int Epoch, List<double> EpochLosses);

    public static IReadOnlyList<double> Run(IReadOnlyList<string> images, DinoOptions options, string runDir, Action<DinoProgress>? progress = null,
        Action<int>? epochSaved = null)
    {
        using var source = new ImageFolderPatches(images);
        return Run(source, options, runDir, progress, epochSaved);
    }

    /// <param name="progress">Called after every iteration.</param>
    /// <param name="epochSaved">Called with the epoch (1-based) once its checkpoint and teacher backbone are in the run folder (e.g. to evaluate it).</param>
    public static IReadOnlyList<double> Run(IPatchSource images, DinoOptions options, string runDir, Action<DinoProgress>? progress = null,
        Action<int>? epochSaved = null)
    {
        set_num_threads(options.Threads);
        var spec = EncoderRegistry.Get(options.Arch);
        if (spec.Weights != "none") throw new HistoException($"--arch {options.Arch}: pretraining starts from a random {string.Join("/", EncoderRegistry.All.Where(e => e.Weights == "none").Select(e => e.Name))}");
        if (images.Count < options.BatchSize) throw new HistoException($"{images.Count} images for a batch of {options.BatchSize}; lower --batch-size");
        Directory.CreateDirectory(runDir); // only once the inputs are known to be usable
        RecordOrCheckSettings(runDir, options, images.Count);

        // ============ networks: student, teacher (a copy, no gradients); loss; AdamW ============
        manual_seed(options.Seed);
        DinoHead Head() => new(spec.FeatureDim, options.OutDim, options.NormLastLayer, options.HeadHidden, options.HeadBottleneck);
        using var student = new DinoNetwork(spec.Create(), Head());
        using var teacher = new DinoNetwork(spec.Create(), Head());
        using var dino = new DinoStep(student, teacher, options.OutDim);

        // ============ schedules, per iteration (teacher temperature per epoch) ============
        int iterations = images.Count / options.BatchSize;
        double lr = options.BaseLearningRate * options.BatchSize / 256;
        var lrSchedule = Schedules.Cosine(lr, options.MinLearningRate, options.Epochs, iterations, Math.Min(options.WarmupEpochs, options.Epochs));
        var wdSchedule = Schedules.Cosine(options.WeightDecay, options.WeightDecayEnd, options.Epochs, iterations);
        var momentumSchedule = Schedules.Cosine(options.TeacherMomentum, 1.0, options.Epochs, iterations);
        var temperature = Schedules.TeacherTemperature(options.WarmupTeacherTemperature, options.TeacherTemperature,
            Math.Min(options.WarmupTeacherTemperatureEpochs, options.Epochs), options.Epochs);

        // ============ resume ============
        var losses = new List<double>();
        int startEpoch = 0;
        string statePath = Path.Combine(runDir, StateFile);
        if (File.Exists(statePath))
        {
            var state = JsonSerializer.Deserialize<State>(File.ReadAllText(statePath))!;
            var saved = Safetensors.LoadStateDict(Path.Combine(runDir, "checkpoint.safetensors"), null!);
            using (no_grad())
            {
                foreach (var (name, t) in student.state_dict()) t.copy_(saved["student." + name]);
                foreach (var (name, t) in teacher.state_dict()) t.copy_(saved["teacher." + name]);
                dino.Loss.Center.copy_(saved["center"]);
            }
            foreach (var t in saved.Values) t.Dispose();
            dino.Optimizer.load_state_dict(Path.Combine(runDir, "optimizer.bin"));
            startEpoch = state.Epoch + 1;
            losses = state.EpochLosses;
        }

        // ============ training loop ============
        for (int epoch = startEpoch; epoch < options.Epochs; epoch++)
        {
            var order = Enumerable.Range(0, images.Count).ToArray();
            new Random(options.Seed * 7919 + epoch).Shuffle(order);
            double epochLoss = 0;
            for (int it = 0; it < iterations; it++)
            {
                int global = epoch * iterations + it;
                using var scope = NewDisposeScope();
                var crops = MakeCrops(images, order.Skip(it * options.BatchSize).Take(options.BatchSize).ToList(), options, epoch);
                var result = dino.Run(crops, new DinoStepSettings(lrSchedule[global], wdSchedule[global], momentumSchedule[global],
                    temperature[epoch], FreezeLastLayer: epoch < options.FreezeLastLayerEpochs, options.ClipGrad));
                if (!double.IsFinite(result.Loss))
                    throw new HistoException($"DINO loss became {result.Loss} at epoch {epoch + 1}, iteration {it + 1}; stopping (lower the learning rate)");
                epochLoss += result.Loss;
                progress?.Invoke(new DinoProgress(epoch + 1, options.Epochs, it + 1, iterations, result.Loss, result.TeacherEntropy, result.TeacherMarginalEntropy, lrSchedule[global]));
            }
            losses.Add(epochLoss / iterations);
            SaveCheckpoint(runDir, student, teacher, dino.Loss, dino.Optimizer, new State(epoch, losses));
            SaveBackbone(runDir, teacher, spec, options.Augmentation.GlobalSize);
            epochSaved?.Invoke(epoch + 1);
        }
        return losses;
    }

    /// <summary>The batch's views, normalised and grouped by crop ([B, 3, S, S] each); every image's views come from a generator seeded by (seed, epoch, image).</summary>
    static List<Tensor> MakeCrops(IPatchSource images, IReadOnlyList<int> batch, DinoOptions options, int epoch)
    {
        // Patches are read and decoded on all cores (no tensors there); the views are made on this thread, whose dispose scope owns them.
        var decoded = new RgbaImage[batch.Count];
        Parallel.For(0, batch.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.Threads) }, b => decoded[b] = images.Read(batch[b]));
        var perImage = new List<Tensor>[batch.Count];
        for (int b = 0; b < batch.Count; b++)
        {
            using var image = ToTensor(decoded[b], options.Augmentation.GlobalSize);
            perImage[b] = options.Augmentation.Views(image, new Random(ViewSeed(options.Seed, epoch, batch[b])));
        }
        int views = perImage[0].Count;
        var crops = new List<Tensor>(views);
        for (int v = 0; v < views; v++)
        {
            using var stacked = stack(perImage.Select(p => p[v]).ToList());
            crops.Add(Normalise(stacked));
        }
        foreach (var p in perImage) foreach (var t in p) t.Dispose();
        return crops;
    }

    static readonly float[] Mean = [0.485f, 0.456f, 0.406f], Std = [0.229f, 0.224f, 0.225f];

    static Tensor Normalise(Tensor x)
    {
        using var mean = tensor(Mean).reshape(1, 3, 1, 1);
        using var std = tensor(Std).reshape(1, 3, 1, 1);
        return (x - mean) / std;
    }

    /// <summary>
    /// The seed of one image's views in one epoch: a fixed mix (SplitMix64's finaliser) of seed, epoch and index.
    /// Not HashCode.Combine, which .NET randomises per process: runs must repeat across processes.
    /// </summary>
    public static int ViewSeed(int seed, int epoch, int index)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)epoch * 0xBF58476D1CE4E5B9UL ^ (ulong)(uint)index * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }

    static Tensor ToTensor(RgbaImage image, int minSide)
    {
        if (Math.Min(image.Width, image.Height) < minSide)
        {
            double scale = (double)minSide / Math.Min(image.Width, image.Height);
            image = image.Resize((int)Math.Ceiling(image.Width * scale), (int)Math.Ceiling(image.Height * scale));
        }
        using var bytes = tensor(image.Pixels, [image.Height, image.Width, 4]);
        return bytes.narrow(2, 0, 3).permute(2, 0, 1).to_type(ScalarType.Float32) / 255f;
    }

    /// <summary>
    /// A new run records its settings; a resumed one (a finished epoch in the folder) must match them, or the schedules,
    /// shapes and views would silently differ from the run it continues. Threads do not change results and are not compared.
    /// </summary>
    static void RecordOrCheckSettings(string runDir, DinoOptions options, int images)
    {
        var json = new JsonSerializerOptions { IncludeFields = true, WriteIndented = true };
        var current = JsonSerializer.SerializeToNode(new { Images = images, Options = options with { Threads = 0 } }, json)!;
        string path = Path.Combine(runDir, SettingsFile);
        if (File.Exists(Path.Combine(runDir, StateFile)) && File.Exists(path))
        {
            var now = Flatten(current);
            var differences = Flatten(JsonNode.Parse(File.ReadAllText(path))!).Where(kv => now.GetValueOrDefault(kv.Key) != kv.Value)
                .Select(kv => $"{kv.Key} {kv.Value} -> {now.GetValueOrDefault(kv.Key) ?? "missing"}").ToList();
            if (differences.Count > 0)
                throw new HistoException($"{runDir} holds a run started with other settings ({string.Join(", ", differences)}); resume it with the same options and images, or give a new run folder");
            return;
        }
        AtomicFile.WriteAllText(path, current.ToJsonString(json));
    }

    /// <summary>Leaf values of a JSON tree by dotted path ("Options.Augmentation.LocalCrops").</summary>
    static Dictionary<string, string> Flatten(JsonNode node, string prefix = "")
    {
        var result = new Dictionary<string, string>();
        if (node is JsonObject obj)
            foreach (var (key, child) in obj)
                foreach (var kv in Flatten(child!, prefix.Length == 0 ? key : $"{prefix}.{key}")) result[kv.Key] = kv.Value;
        else result[prefix] = node.ToJsonString();
        return result;
    }

    static void SaveCheckpoint(string runDir, DinoNetwork student, DinoNetwork teacher, DinoLoss loss, OptimizerHelper optimizer, State state)
    {
        var tensors = student.state_dict().ToDictionary(kv => "student." + kv.Key, kv => kv.Value);
        foreach (var (name, t) in teacher.state_dict()) tensors["teacher." + name] = t;
        tensors["center"] = loss.Center;
        AtomicFile.Write(Path.Combine(runDir, "checkpoint.safetensors"), tmp => Safetensors.SaveStateDict(tmp, tensors));
        AtomicFile.Write(Path.Combine(runDir, "optimizer.bin"), tmp => optimizer.save_state_dict(tmp));
        AtomicFile.WriteAllText(Path.Combine(runDir, StateFile), JsonSerializer.Serialize(state)); // last: marks the epoch done
    }

    static void SaveBackbone(string runDir, DinoNetwork teacher, EncoderSpec spec, int inputSize)
    {
        var tensors = teacher.Backbone.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        AtomicFile.Write(Path.Combine(runDir, BackboneFile), tmp => Safetensors.SaveStateDict(tmp, tensors));
        AtomicFile.WriteAllText(Path.Combine(runDir, EncoderFile), JsonSerializer.Serialize(new EncoderInfo(spec.Name, inputSize, spec.FeatureDim)));
    }
}
