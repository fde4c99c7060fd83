using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
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
    /// <summary>main_dino.py's warmup_epochs (10) of its 100 epochs: the learning rate warms up over a tenth of the run.</summary>
    public const double DinoWarmupFraction = 10.0 / 100;
    /// <summary>main_dino.py's warmup_epochs: longer runs still warm up over at most 10 epochs.</summary>
    public const int DinoMaxWarmupEpochs = 10;

    /// <summary>
    /// Backbone: vit-tiny, vit-small, resnet18 or resnet50 (random initialisation), or, with <see cref="Init"/>, that
    /// encoder's architecture; null: <see cref="Init"/>'s architecture, or vit-tiny without it.
    /// </summary>
    public string? Arch { get; init; }
    /// <summary>
    /// An encoder (registered name, checkpoint or <c>histo pretrain</c> run) whose weights the student and teacher backbones
    /// start from: continued, domain-adaptive pretraining. Null: random initialisation.
    /// </summary>
    public string? Init { get; init; }
    /// <summary>Not part of the recorded settings: a finished run may be extended with more epochs (see README).</summary>
    [JsonIgnore]
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
    /// <summary>
    /// Learning-rate warm-up epochs; null: a tenth of the run's iterations, at most 10 epochs (<see cref="DinoWarmupFraction"/>).
    /// A fixed 10 made every run of 10 epochs or fewer all warm-up, its learning rate never decaying.
    /// </summary>
    public int? WarmupEpochs { get; init; }
    public double WeightDecay { get; init; } = 0.04;
    public double WeightDecayEnd { get; init; } = 0.4;
    public double TeacherMomentum { get; init; } = 0.996;
    public double WarmupTeacherTemperature { get; init; } = 0.04;
    public double TeacherTemperature { get; init; } = 0.04;
    public int WarmupTeacherTemperatureEpochs { get; init; } = 30;
    /// <summary>Each parameter's gradient is clipped to this norm separately (not the global norm); 0 turns clipping off.</summary>
    public double ClipGrad { get; init; } = 3.0;
    /// <summary>Epochs during which the head's last layer gets no updates.</summary>
    public int FreezeLastLayerEpochs { get; init; } = 1;
    public int Seed { get; init; } = 0;
    /// <summary>Input image size of the global crops (local crops are 96/224 of it).</summary>
    public DinoAugmentation Augmentation { get; init; } = new();
    /// <summary>Threads do not change results: not recorded.</summary>
    [JsonIgnore]
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Start the run folder afresh when it holds a run with other settings (its checkpoint is discarded).</summary>
    [JsonIgnore]
    public bool Overwrite { get; init; }

    /// <summary>Warm-up iterations of a run of <see cref="Epochs"/> epochs of <paramref name="iterationsPerEpoch"/>.</summary>
    public int WarmupIterations(int iterationsPerEpoch) => WarmupEpochs is { } w
        ? w * iterationsPerEpoch
        : (int)Math.Min((long)DinoMaxWarmupEpochs * iterationsPerEpoch, (long)Math.Round(DinoWarmupFraction * Epochs * iterationsPerEpoch));

    /// <summary>Refuses values that would crash, divide by zero or silently train nothing, naming the option.</summary>
    public void Validate()
    {
        Require.AtLeast("--epochs", Epochs, 1);
        Require.AtLeast("--batch-size", BatchSize, 1);
        Require.AtLeast("--out-dim", OutDim, 1);
        Require.AtLeast("--head-hidden", HeadHidden, 1);
        Require.AtLeast("--head-bottleneck", HeadBottleneck, 1);
        Require.Positive("--lr", BaseLearningRate);
        Require.NonNegative("--min-lr", MinLearningRate);
        if (WarmupEpochs is { } w)
        {
            Require.AtLeast("--warmup-epochs", w, 0);
            if (w >= Epochs)
                throw new UsageException($"--warmup-epochs {w} must be fewer than --epochs {Epochs}, or the learning rate never decays");
        }
        Require.NonNegative("--weight-decay", WeightDecay);
        Require.NonNegative("--weight-decay-end", WeightDecayEnd);
        Require.InRange("--momentum-teacher", TeacherMomentum, 0, 1);
        Require.Positive("--teacher-temp", TeacherTemperature);
        Require.Positive("--warmup-teacher-temp", WarmupTeacherTemperature);
        Require.AtLeast("--warmup-teacher-temp-epochs", WarmupTeacherTemperatureEpochs, 0);
        Require.NonNegative("--clip-grad", ClipGrad);
        Require.AtLeast("--freeze-last-layer", FreezeLastLayerEpochs, 0);
        Require.AtLeast("--threads", Threads, 1);
        var a = Augmentation;
        // Below 16 px a ViT-Tiny/16 crop has no patch at all and its forward pass crashes in native code.
        Require.AtLeast("--global-size", a.GlobalSize, MinCropSize);
        Require.AtLeast("--local-size", a.LocalSize, MinCropSize);
        Require.AtLeast("--local-crops", a.LocalCrops, 0);
        CropScale("--global-crops-scale", a.GlobalScale);
        CropScale("--local-crops-scale", a.LocalScale);
    }

    /// <summary>The smallest crop side accepted: one 16 px ViT patch.</summary>
    public const int MinCropSize = 16;

    static void CropScale(string option, (double Min, double Max) scale)
    {
        Require.Positive($"{option} (min)", scale.Min);
        Require.InRange($"{option} (min)", scale.Min, 0, 1);
        Require.InRange($"{option} (max)", scale.Max, scale.Min, 1);
    }
}

/// <summary>Reported after every iteration.</summary>
public sealed record DinoProgress(int Epoch, int Epochs, int Iteration, int Iterations, double Loss, double TeacherEntropy,
    double TeacherMarginalEntropy, double LearningRate);

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

    public sealed record EncoderInfo(string Arch, int InputSize, int FeatureDim);
    sealed record State(int Epoch, List<double> EpochLosses);

    public static IReadOnlyList<double> Run(IReadOnlyList<string> images, DinoOptions options, string runDir,
        Action<DinoProgress>? progress = null,
        Action<int>? epochSaved = null, Action<string>? log = null)
    {
        using var source = new ImageFolderPatches(images);
        return Run(source, options, runDir, progress, epochSaved, log);
    }

    /// <param name="progress">Called after every iteration.</param>
    /// <param name="epochSaved">Called with the epoch (1-based) once its checkpoint and teacher backbone are in the run folder (e.g.
    /// to evaluate it).</param>
    /// <param name="log">Told about temporaries of killed runs removed from the run folder.</param>
    public static IReadOnlyList<double> Run(IPatchSource images, DinoOptions options, string runDir, Action<DinoProgress>? progress = null,
        Action<int>? epochSaved = null, Action<string>? log = null)
    {
        options.Validate();
        set_num_threads(options.Threads);
        if (images.Count < options.BatchSize) throw new HistoException($"{images.Count} images for a batch of {options.BatchSize}; "
            + $"lower --batch-size");
        // The initial encoder is built before the seed is set: a random network built on the way must not shift the draws below.
        var (spec, initial) = Architecture(options);
        JobFolder? folder = null;
        string statePath = Path.Combine(runDir, EpochCheckpoint.StateFile);
        try
        {
            folder = JobFolder.Open(runDir, "histo pretrain"); // only once the inputs are known to be usable
            // The epoch count is not compared (DinoOptions.Epochs is not recorded): a finished run may be extended.
            folder.RecordOrCheckSettings(SettingsFile, new { Images = images.Count, Options = options }, options.Overwrite,
                compare: File.Exists(statePath));
        }
        catch
        {
            folder?.Dispose();
            initial?.Dispose();
            throw;
        }
        using var _ = folder;
        foreach (var removed in folder.RemovedTemporaries) log?.Invoke($"removed {removed}, left by a run that was killed");
        if (options.Overwrite) File.Delete(statePath); // the checkpoint beside it is rewritten after the first epoch

        // ============ networks: student, teacher (a copy, no gradients); loss; AdamW ============
        manual_seed(options.Seed);
        DinoHead Head() => new(spec.FeatureDim, options.OutDim, options.NormLastLayer, options.HeadHidden, options.HeadBottleneck);
        using var student = new DinoNetwork(initial ?? spec.Create(), Head());
        using var teacher = new DinoNetwork(EncoderRegistry.Get(spec.Name).Create(), Head());
        student.train(); // a loaded encoder comes in evaluation mode; DINO trains both networks' batch norms on their batches
        teacher.train();
        using var dino = new DinoStep(student, teacher, options.OutDim);
        using var normaliser = new InputNormaliser(spec.Normalization);

        // ============ schedules, per iteration (teacher temperature per epoch), for the run's length ============
        // Extending a finished run recomputes them for the new length: its later epochs follow the longer run's curves.
        int iterations = images.Count / options.BatchSize, total = options.Epochs * iterations;
        double lr = options.BaseLearningRate * options.BatchSize / 256;
        var lrSchedule = Schedules.CosineOverIterations(lr, options.MinLearningRate, total, options.WarmupIterations(iterations));
        var wdSchedule = Schedules.Cosine(options.WeightDecay, options.WeightDecayEnd, options.Epochs, iterations);
        var momentumSchedule = Schedules.Cosine(options.TeacherMomentum, 1.0, options.Epochs, iterations);
        var temperature = Schedules.TeacherTemperature(options.WarmupTeacherTemperature, options.TeacherTemperature,
            Math.Min(options.WarmupTeacherTemperatureEpochs, options.Epochs), options.Epochs);

        // ============ resume (or extend a finished run) ============
        var losses = new List<double>();
        int startEpoch = 0;
        if (EpochCheckpoint.Load<State>(runDir, CheckpointTensors(student, teacher, dino.Loss), dino.Optimizer) is { } state)
        {
            if (state.Epoch + 1 > options.Epochs)
                throw new UsageException($"{runDir} already holds {state.Epoch + 1} epochs; --epochs {options.Epochs} would shorten it: "
                    + $"give --epochs {state.Epoch + 1} or more, or another -o");
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
                var batch = order.Skip(it * options.BatchSize).Take(options.BatchSize).ToList();
                var crops = MakeCrops(images, batch, options, epoch, normaliser);
                var result = dino.Run(crops, new DinoStepSettings(lrSchedule[global], wdSchedule[global], momentumSchedule[global],
                    temperature[epoch], FreezeLastLayer: epoch < options.FreezeLastLayerEpochs, options.ClipGrad));
                if (!double.IsFinite(result.Loss))
                    throw new HistoException($"DINO loss became {result.Loss} at epoch {epoch + 1}, iteration {it + 1}; stopping "
                        + $"(lower the learning rate)");
                epochLoss += result.Loss;
                progress?.Invoke(new DinoProgress(epoch + 1, options.Epochs, it + 1, iterations, result.Loss, result.TeacherEntropy,
                    result.TeacherMarginalEntropy, lrSchedule[global]));
            }
            losses.Add(epochLoss / iterations);
            EpochCheckpoint.Save(runDir, CheckpointTensors(student, teacher, dino.Loss), dino.Optimizer, new State(epoch, losses));
            SaveBackbone(runDir, teacher, spec, options.Augmentation.GlobalSize);
            epochSaved?.Invoke(epoch + 1);
        }
        return losses;
    }

    /// <summary>
    /// The backbone's architecture and, with <see cref="DinoOptions.Init"/>, the network holding its weights (null: random
    /// initialisation). A registered encoder with trained weights is only a starting point through --init.
    /// </summary>
    static (EncoderSpec Spec, nn.Module<Tensor, Tensor>? Initial) Architecture(DinoOptions options)
    {
        if (options.Init is null)
        {
            var spec = EncoderRegistry.Get(options.Arch ?? DefaultArch);
            if (spec.Weights != "none")
                throw new UsageException($"--arch {spec.Name} has trained weights: start from them with --init {spec.Name}, "
                    + "or choose a random " + string.Join("/", EncoderRegistry.All.Where(e => e.Weights == "none").Select(e => e.Name)));
            return (spec, null);
        }
        if (!EncoderRegistry.All.Any(e => e.Name == options.Init) && !Path.Exists(options.Init))
            throw new UsageException($"--init {options.Init}: neither a registered encoder "
                + $"({string.Join(", ", EncoderRegistry.All.Select(e => e.Name))}) nor an existing checkpoint or pretrain run");
        var (initSpec, network) = EncoderRegistry.CreateNetwork(options.Init);
        if (options.Arch is not null && options.Arch != initSpec.Name)
        {
            network.Dispose();
            throw new UsageException($"--init {options.Init} is a {initSpec.Name} network, not --arch {options.Arch}; "
                + "drop --arch (the run takes the encoder's architecture) or give an encoder of that architecture");
        }
        return (initSpec, network);
    }

    /// <summary>The backbone without <see cref="DinoOptions.Arch"/> or <see cref="DinoOptions.Init"/>.</summary>
    public const string DefaultArch = "vit-tiny";

    /// <summary>The batch's views, normalised and grouped by crop ([B, 3, S, S] each); every image's views come from a generator
    /// seeded by (seed, epoch, image).</summary>
    static List<Tensor> MakeCrops(IPatchSource images, IReadOnlyList<int> batch, DinoOptions options, int epoch, InputNormaliser normaliser)
    {
        // Patches are read and decoded on all cores (no tensors there); the views are made on this thread, whose dispose scope owns them.
        var decoded = new RgbaImage[batch.Count];
        Parallel.For(0, batch.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.Threads) },
            b => decoded[b] = images.Read(batch[b]));
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
            crops.Add(normaliser.FromUnit(stacked)); // the encoder's own input convention, as it will embed
        }
        foreach (var p in perImage) foreach (var t in p) t.Dispose();
        return crops;
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

    // Kept alive, not converted on the fly: see KeptScalars.
    static readonly Scalar ByteRange = 255f.ToScalar();

    internal static Tensor ToTensor(RgbaImage image, int minSide)
    {
        if (Math.Min(image.Width, image.Height) < minSide)
        {
            double scale = (double)minSide / Math.Min(image.Width, image.Height);
            image = image.Resize((int)Math.Ceiling(image.Width * scale), (int)Math.Ceiling(image.Height * scale));
        }
        using var bytes = tensor(image.Pixels, [image.Height, image.Width, 4]);
        return bytes.narrow(2, 0, 3).permute(2, 0, 1).to_type(ScalarType.Float32) / ByteRange;
    }

    /// <summary>What a DINO checkpoint holds: both networks and the loss's centre.</summary>
    static Dictionary<string, Tensor> CheckpointTensors(DinoNetwork student, DinoNetwork teacher, DinoLoss loss)
    {
        var tensors = student.state_dict().ToDictionary(kv => "student." + kv.Key, kv => kv.Value);
        foreach (var (name, t) in teacher.state_dict()) tensors["teacher." + name] = t;
        tensors["center"] = loss.Center;
        return tensors;
    }

    static void SaveBackbone(string runDir, DinoNetwork teacher, EncoderSpec spec, int inputSize)
    {
        var tensors = teacher.Backbone.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        AtomicFile.Write(Path.Combine(runDir, BackboneFile), tmp => Safetensors.SaveStateDict(tmp, tensors));
        AtomicFile.WriteAllText(Path.Combine(runDir, EncoderFile), JsonSerializer.Serialize(new EncoderInfo(spec.Name, inputSize,
            spec.FeatureDim)));
    }
}
