using System.Text.Json.Serialization;
using Histo.Imaging;
using Histo.IO;
using Histo.Models;
using Histo.SelfSupervised;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Distillation;

/// <summary>Options of <c>histo distill</c>.</summary>
public sealed record DistillOptions
{
    public const string Cosine = "cosine", Mse = "mse", Attention = "at";
    public static readonly string[] LossNames = [Cosine, Mse, Attention];

    /// <summary>The teacher: a registered encoder (with <see cref="TeacherWeights"/> for the foundation models), a checkpoint or
    /// a pretrain/distill run.</summary>
    public string Teacher { get; init; } = EncoderRegistry.Default;
    public string? TeacherWeights { get; init; }
    /// <summary>The student's architecture, randomly initialised: a registered row without weights.</summary>
    public string Student { get; init; } = "resnet18-half";
    /// <summary>The student's input side: a student may look at patches at a lower resolution than its teacher (PCam's 96 px).</summary>
    public int InputSize { get; init; } = 96;
    /// <summary>Loss terms, summed: cosine (1 - cos), mse, at (attention transfer, ResNet teacher and student).</summary>
    public string[] Losses { get; init; } = [Cosine];
    /// <summary>Fixed views per patch: the patch itself and Views - 1 DINO global crops, each seen once by the teacher.</summary>
    public int Views { get; init; } = 4;
    [JsonIgnore] public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 64;
    public double LearningRate { get; init; } = 1e-3;
    public double WeightDecay { get; init; } = 0.05;
    public int WarmupEpochs { get; init; } = 1;
    /// <summary>Weight of attention transfer (the paper's beta, 1000).</summary>
    public double Beta { get; init; } = AttentionTransfer.DefaultBeta;
    public int Seed { get; init; }
    [JsonIgnore] public int Threads { get; init; } = Environment.ProcessorCount;
    [JsonIgnore] public bool Overwrite { get; init; }

    public void Validate()
    {
        Require.AtLeast("--input-size", InputSize, DinoOptions.MinCropSize);
        Require.AtLeast("--views", Views, 1);
        Require.TrainingSchedule(Epochs, BatchSize, LearningRate, WeightDecay, WarmupEpochs);
        Require.Positive("--beta", Beta);
        Require.AtLeast("--threads", Threads, 1);
        if (Losses.Length == 0) throw new UsageException($"--loss needs at least one of {string.Join(", ", LossNames)}");
        foreach (var l in Losses)
            if (!LossNames.Contains(l))
                throw new UsageException($"--loss '{l}': use {string.Join(", ", LossNames)} (comma-separated); soft targets (kd) "
                    + "distil a classifier: 'histo train --distill-from RUN'");
        if (EncoderRegistry.All.FirstOrDefault(e => e.Name == Teacher) is { Weights: "none" } && TeacherWeights is null)
            throw new UsageException($"--teacher {Teacher} is a random initialisation and teaches nothing: give --teacher-weights "
                + $"FILE, a trained encoder ({EncoderRegistry.Default}, ...) or a pretrain/distill run");
        var student = EncoderRegistry.All.FirstOrDefault(e => e.Name == Student);
        if (student is null || student.Weights != "none")
            throw new UsageException($"--student '{Student}': use one of "
                + string.Join(", ", EncoderRegistry.All.Where(e => e.Weights == "none").Select(e => e.Name)));
    }
}

/// <summary>Reported after every batch: of the teacher's pass over the views (<see cref="Teacher"/>), then of training.</summary>
public sealed record DistillProgress(bool Teacher, int Epoch, int Epochs, int Iteration, int Iterations, double Loss,
    IReadOnlyDictionary<string, double> Terms);

/// <summary>
/// Feature distillation of a patch encoder, the recipe in one place: a frozen teacher (any Histo encoder) and a small
/// student (random initialisation) with a linear projection to the teacher's dimension. Each unlabelled patch gets
/// <see cref="DistillOptions.Views"/> fixed views (the patch itself, then DINO's global crops, seeded by seed, view and
/// patch), and the teacher embeds each view once: its features (and, for attention transfer, its attention maps at the
/// student's stage sizes) are cached in the run folder, so every epoch after the first pass costs only the student. Each
/// epoch the student sees one view of every patch, at its own input size, and minimises the chosen terms: cosine 1 -
/// cos(W s(x) + b, t(x)) (as H0-mini and other feature-distilled pathology encoders), MSE, and attention transfer
/// (Zagoruyko and Komodakis 2017). AdamW (weight decay on weights with 2+ dimensions), warm-up then cosine learning rate.
/// A checkpoint per epoch (<see cref="EpochCheckpoint"/>); the run folder is an encoder for <c>histo embed --encoder RUN</c>.
/// </summary>
public static class EncoderDistillation
{
    public const string SettingsFile = "settings.json";
    /// <summary>The teacher's targets, float32 records of [feature, attention maps] for patch i, view v at record i * V + v.</summary>
    public const string TargetsFile = "teacher_targets.f32";

    sealed record State(int Epoch, List<double> EpochLosses);

    public static IReadOnlyList<double> Run(IPatchSource patches, DistillOptions options, string runDir,
        Action<DistillProgress>? progress = null, Action<string>? log = null)
    {
        options.Validate();
        set_num_threads(options.Threads);
        if (patches.Count < options.BatchSize)
            throw new HistoException($"{patches.Count} patches for a batch of {options.BatchSize}; lower --batch-size");
        bool attention = options.Losses.Contains(DistillOptions.Attention);

        // ============ networks: the frozen teacher; the student and its projection (random initialisation, seeded) ============
        var (teacherSpec, teacherNetwork) = EncoderRegistry.CreateNetwork(options.Teacher, weights: options.TeacherWeights);
        using var teacher = teacherNetwork;
        teacher.eval();
        var studentSpec = EncoderRegistry.Get(options.Student);
        manual_seed(options.Seed);
        using var student = new DistilledEncoder(studentSpec.Create(), studentSpec.FeatureDim, teacherSpec.FeatureDim);
        if (attention && (teacher is not ResNet || student.Backbone is not ResNet))
            throw new UsageException($"--loss at compares the stages of two ResNets; teacher {teacherSpec.Name} and student "
                + $"{studentSpec.Name} are not both ResNets");
        using var teacherInput = new InputNormaliser(teacherSpec.Normalization);
        using var studentInput = new InputNormaliser(studentSpec.Normalization);
        int teacherSize = teacherSpec.InputSize, studentSize = options.InputSize;
        var views = new FixedViews(new DinoAugmentation { GlobalSize = teacherSize, LocalCrops = 0 }, options.Seed, teacherSize,
            studentSize);
        var mapSides = attention ? CommonStageSides((ResNet)teacher, (ResNet)student.Backbone, teacherSize, studentSize) : [];
        int recordLength = teacherSpec.FeatureDim + mapSides.Sum(s => (int)(s * s));

        using var folder = JobFolder.Open(runDir, "histo distill");
        foreach (var removed in folder.RemovedTemporaries) log?.Invoke($"removed {removed}, left by a run that was killed");
        // The epoch count is not compared: a finished run may be extended with more epochs.
        folder.RecordOrCheckSettings(SettingsFile, new { Patches = patches.Count, TeacherWeights = teacherSpec.Weights, Options = options },
            options.Overwrite, compare: EpochCheckpoint.Exists(runDir) || File.Exists(Path.Combine(runDir, TargetsFile)));
        if (options.Overwrite)
        {
            File.Delete(Path.Combine(runDir, EpochCheckpoint.StateFile));
            File.Delete(Path.Combine(runDir, TargetsFile));
        }

        // ============ the teacher, once per patch and view ============
        string targetsPath = Path.Combine(runDir, TargetsFile);
        long expectedBytes = (long)patches.Count * options.Views * recordLength * sizeof(float);
        if (!File.Exists(targetsPath) || new FileInfo(targetsPath).Length != expectedBytes)
            AtomicFile.Write(targetsPath, tmp => WriteTeacherTargets(tmp, patches, options, views, teacher, teacherInput, mapSides,
                progress));
        using var targets = new TargetReader(targetsPath, recordLength);

        // ============ optimiser and schedule ============
        student.train();
        var decayed = student.parameters().Where(p => p.dim() >= 2).ToList();
        using var optimizer = new Models.AdamW([new Models.AdamW.Group(decayed, options.LearningRate, options.WeightDecay),
            new Models.AdamW.Group(student.parameters().Except(decayed), options.LearningRate, 0)]);
        int iterations = patches.Count / options.BatchSize, total = options.Epochs * iterations;
        var lr = Schedules.CosineOverIterations(options.LearningRate, options.LearningRate * 1e-3, total,
            options.WarmupEpochs * iterations);

        // ============ resume ============
        var tensors = student.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        var losses = new List<double>();
        int start = 0;
        if (EpochCheckpoint.Load<State>(runDir, tensors, optimizer) is { } state)
        {
            if (state.Epoch + 1 > options.Epochs)
                throw new UsageException($"{runDir} already holds {state.Epoch + 1} epochs; give --epochs {state.Epoch + 1} or more");
            (start, losses) = (state.Epoch + 1, state.EpochLosses);
        }
        var info = new DistilledEncoder.Info(studentSpec.Name, studentSize, studentSpec.FeatureDim, teacherSpec.FeatureDim,
            teacherSpec.Name);

        // ============ training loop ============
        for (int epoch = start; epoch < options.Epochs; epoch++)
        {
            var random = new Random(options.Seed * 7919 + epoch);
            var order = Enumerable.Range(0, patches.Count).ToArray();
            random.Shuffle(order);
            var viewOf = order.Select(_ => random.Next(options.Views)).ToArray(); // the view each patch is seen in this epoch
            double epochLoss = 0;
            for (int it = 0; it < iterations; it++)
            {
                using var scope = NewDisposeScope();
                foreach (var g in optimizer.Groups) g.LearningRate = lr[epoch * iterations + it];
                var batch = Enumerable.Range(it * options.BatchSize, options.BatchSize).Select(k => (Patch: order[k], View: viewOf[k]))
                    .ToList();
                var decoded = Decode(patches, batch.Select(b => b.Patch).ToList(), options.Threads);
                var inputs = stack(batch.Select((b, k) => views.Student(decoded[k], b.Patch, b.View)).ToList());
                var target = targets.Read(batch.Select(b => (long)b.Patch * options.Views + b.View).ToList());
                var teacherFeatures = target.narrow(1, 0, teacherSpec.FeatureDim);
                var x = studentInput.FromUnit(inputs);
                Tensor pooled;
                List<Tensor> stages = [];
                if (attention) (pooled, stages) = ((ResNet)student.Backbone).ForwardStages(x);
                else pooled = student.Backbone.forward(x);
                var projected = student.Projection.forward(pooled);
                var terms = new Dictionary<string, Tensor>();
                foreach (var name in options.Losses)
                    terms[name] = name switch
                    {
                        DistillOptions.Cosine => nn.functional.cosine_similarity(projected, teacherFeatures, 1).mean().neg()
                            .add(KeptScalars.One, KeptScalars.One),
                        DistillOptions.Mse => nn.functional.mse_loss(projected, teacherFeatures),
                        _ => AttentionTransfer.Loss(stages, TeacherMaps(target, teacherSpec.FeatureDim, mapSides), options.Beta),
                    };
                var loss = terms.Values.Aggregate((a, b) => a.add(b, KeptScalars.One));
                double value = loss.item<float>();
                if (!double.IsFinite(value))
                    throw new HistoException($"distillation loss became {value} at epoch {epoch + 1}, iteration {it + 1}; lower --lr");
                optimizer.ZeroGrad();
                loss.backward();
                optimizer.Step();
                epochLoss += value;
                progress?.Invoke(new DistillProgress(false, epoch + 1, options.Epochs, it + 1, iterations, value,
                    terms.ToDictionary(t => t.Key, t => (double)t.Value.item<float>())));
            }
            losses.Add(epochLoss / iterations);
            EpochCheckpoint.Save(runDir, tensors, optimizer, new State(epoch, losses));
            student.eval();
            student.Save(runDir, info);
            student.train();
        }
        return losses;
    }

    /// <summary>The student's batch norms see the student's own batch statistics; the teacher's cached targets do not move.</summary>
    static RgbaImage[] Decode(IPatchSource patches, IReadOnlyList<int> indices, int threads)
    {
        var decoded = new RgbaImage[indices.Count];
        Parallel.For(0, indices.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) },
            k => decoded[k] = patches.Read(indices[k]));
        return decoded;
    }

    static void WriteTeacherTargets(string path, IPatchSource patches, DistillOptions options, FixedViews views,
        nn.Module<Tensor, Tensor> teacher, InputNormaliser teacherInput, long[] mapSides, Action<DistillProgress>? progress)
    {
        const int chunk = 16; // patches per forward pass (PatchEncoder's micro-batch)
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using var _ = inference_mode();
        int chunks = (patches.Count + chunk - 1) / chunk;
        for (int c = 0; c < chunks; c++)
        {
            using var scope = NewDisposeScope();
            var indices = Enumerable.Range(c * chunk, Math.Min(chunk, patches.Count - c * chunk)).ToList();
            var decoded = Decode(patches, indices, options.Threads);
            // Record order: patch-major, then view.
            var inputs = stack(indices.SelectMany((p, k) => Enumerable.Range(0, options.Views).Select(v => views.Teacher(decoded[k], p, v)))
                .ToList());
            var x = teacherInput.FromUnit(inputs);
            Tensor features;
            var parts = new List<Tensor>();
            if (mapSides.Length > 0)
            {
                (features, var stages) = ((ResNet)teacher).ForwardStages(x);
                parts.Add(features);
                parts.AddRange(stages.Select((s, j) => AttentionTransfer.Map(s, mapSides[j])));
            }
            else parts.Add(teacher.forward(x));
            var records = cat(parts.Select(p => p.to_type(ScalarType.Float32)).ToList(), 1).contiguous();
            stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(records.data<float>().ToArray().AsSpan()));
            progress?.Invoke(new DistillProgress(true, 0, options.Epochs, c + 1, chunks, 0, new Dictionary<string, double>()));
        }
    }

    /// <summary>The cached teacher maps of a batch of records, one [B, side^2] per stage.</summary>
    static List<Tensor> TeacherMaps(Tensor records, int featureDim, long[] sides)
    {
        var maps = new List<Tensor>();
        long offset = featureDim;
        foreach (var side in sides)
        {
            maps.Add(records.narrow(1, offset, side * side));
            offset += side * side;
        }
        return maps;
    }

    /// <summary>Per stage, the side at which teacher and student are compared, found by running both on one blank input.</summary>
    static long[] CommonStageSides(ResNet teacher, ResNet student, int teacherSize, int studentSize)
    {
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var (_, t) = teacher.ForwardStages(zeros(1, 3, teacherSize, teacherSize));
        bool wasTraining = student.training;
        student.eval();
        var (_, s) = student.ForwardStages(zeros(1, 3, studentSize, studentSize));
        student.train(wasTraining);
        if (t.Count != s.Count)
            throw new UsageException($"--loss at pairs stages: the teacher has {t.Count}, the student {s.Count}");
        return t.Zip(s, (a, b) => AttentionTransfer.CommonSize(b.shape[2], a.shape[2])).ToArray();
    }

    /// <summary>
    /// The fixed views of a patch: view 0 is the patch itself resized to each network's side (as <c>histo embed</c> feeds it);
    /// view v &gt; 0 is one DINO global crop (the first or second kind alternately) at the teacher's side, seeded by (seed, v,
    /// patch), and the student's copy is that crop resampled to the student's side.
    /// </summary>
    sealed class FixedViews(DinoAugmentation augmentation, int seed, int teacherSize, int studentSize)
    {
        public Tensor Teacher(RgbaImage image, int patch, int view) =>
            view == 0 ? Unit(image, teacherSize) : Augmented(image, patch, view);

        public Tensor Student(RgbaImage image, int patch, int view)
        {
            if (view == 0) return Unit(image, studentSize);
            using var crop = Augmented(image, patch, view).unsqueeze(0);
            using var resized = nn.functional.interpolate(crop, size: [studentSize, studentSize], mode: InterpolationMode.Bilinear,
                align_corners: false, antialias: true);
            return resized.squeeze(0);
        }

        Tensor Augmented(RgbaImage image, int patch, int view)
        {
            using var full = DinoTraining.ToTensor(image, teacherSize);
            return augmentation.GlobalView(full, new Random(DinoTraining.ViewSeed(seed, view, patch)), second: view % 2 == 0);
        }

        static Tensor Unit(RgbaImage image, int size) =>
            DinoTraining.ToTensor(image.Width == size && image.Height == size ? image : image.Resize(size, size), size);
    }

    /// <summary>Reads records of the teacher's targets by index (random access: nothing but one batch in memory).</summary>
    sealed class TargetReader(string path, int recordLength) : IDisposable
    {
        readonly FileStream _stream = new(path, FileMode.Open, FileAccess.Read, FileShare.Read);

        public Tensor Read(IReadOnlyList<long> records)
        {
            var values = new float[records.Count * recordLength];
            var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan());
            int size = recordLength * sizeof(float);
            for (int k = 0; k < records.Count; k++)
            {
                _stream.Position = records[k] * size;
                _stream.ReadExactly(bytes.Slice(k * size, size));
            }
            return tensor(values, [records.Count, recordLength]);
        }

        public void Dispose() => _stream.Dispose();
    }
}
