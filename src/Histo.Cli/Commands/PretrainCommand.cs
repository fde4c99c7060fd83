using System.CommandLine;
using Histo.SelfSupervised;
using Histo.Slides;
using Spectre.Console;

namespace Histo.Cli.Commands;

static class PretrainCommand
{
    public static Command Create()
    {
        var d = new DinoOptions();
        var inputs = new PatchInputs();
        var output = new Option<DirectoryInfo>("--output",
            "-o") { Description = "Run folder (checkpoint per epoch; teacher backbone for 'histo embed --encoder RUN').", Required = true };
        string randomArchs = string.Join(", ", Histo.Models.EncoderRegistry.All.Where(e => e.Weights == "none").Select(e => e.Name));
        var arch = new Option<string>("--arch")
        {
            Description = $"Backbone, randomly initialised: {randomArchs} (default {DinoTraining.DefaultArch}); "
                + "with --init, the encoder's architecture.",
        };
        var init = new Option<string>("--init")
        {
            Description = "Start student and teacher backbones from this encoder's weights (a registered name such as resnet18-imagenet, "
                + "a checkpoint or a pretrain run): continued, domain-adaptive pretraining. Default: random initialisation.",
        };
        var epochs = With("--epochs", "Epochs; a finished run given more epochs continues with schedules for the new length.", d.Epochs);
        var batch = With("--batch-size", "Images per iteration.", d.BatchSize);
        var outDim = With("--out-dim", "Head outputs K.", d.OutDim);
        var local = With("--local-crops", "Local crops per image (DINO: 8; 0 for global crops only).", d.Augmentation.LocalCrops);
        var globalSize = With("--global-size", "Global crop side in px (DINO: 224; the input size).", d.Augmentation.GlobalSize);
        var localSize = With("--local-size", "Local crop size in pixels (DINO: 96).", d.Augmentation.LocalSize);
        var globalScale = ScaleOption("--global-crops-scale", "Area range of the global crops, a fraction of the image (DINO: 0.4 1).",
            d.Augmentation.GlobalScale);
        var localScale = ScaleOption("--local-crops-scale", "Area range of the local crops (DINO: 0.05 0.4).", d.Augmentation.LocalScale);
        var warmup = new Option<int?>("--warmup-epochs")
        {
            Description = "Learning-rate warm-up epochs, fewer than --epochs (default: a tenth of the run, at most "
                + $"{DinoOptions.DinoMaxWarmupEpochs} epochs, as DINO's 10 of 100).",
        };
        var lr = With("--lr", "Base learning rate, scaled by batch / 256 (DINO: 5e-4).", d.BaseLearningRate);
        var minLr = With("--min-lr", "Learning rate at the end of the cosine (DINO: 1e-6).", d.MinLearningRate);
        var weightDecay = With("--weight-decay", "AdamW weight decay at the start (DINO: 0.04).", d.WeightDecay);
        var weightDecayEnd = With("--weight-decay-end", "Weight decay at the end of its cosine (DINO: 0.4).", d.WeightDecayEnd);
        var clipGrad = With("--clip-grad", "Largest gradient norm of each parameter (DINO: 3.0; 0 turns clipping off).", d.ClipGrad);
        var freeze = With("--freeze-last-layer", "Epochs without updates of the head's last layer (DINO: 1).", d.FreezeLastLayerEpochs);
        var teacherTemp = With("--teacher-temp", "Teacher temperature after warm-up (DINO: 0.04; 0.02 sharpens more against collapse).",
            d.TeacherTemperature);
        var warmupTeacherTemp = With("--warmup-teacher-temp", "Teacher temperature at the start of its warm-up.",
            d.WarmupTeacherTemperature);
        var momentum = With("--momentum-teacher", "Teacher EMA momentum at the start (cosine to 1; DINO: 0.996).", d.TeacherMomentum);
        var seed = With("--seed", "Seed of every random step.", d.Seed);
        var overwrite = new Option<bool>("--overwrite") { Description = "Start afresh in a run folder holding a run with other settings." };
        var command = new Command("pretrain",
            "Self-supervised pretraining with DINO on patch images; resumes from the run folder, or extends it with more --epochs.")
        {
            inputs.Patches, inputs.Slides, inputs.Coords, output, arch, init, epochs, batch, outDim, local, globalSize, localSize,
            globalScale, localScale,
            warmup, lr, minLr, weightDecay, weightDecayEnd, clipGrad, freeze, teacherTemp, warmupTeacherTemp, momentum, seed, overwrite,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new DinoOptions
            {
                Arch = parse.GetValue(arch), Init = parse.GetValue(init), Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batch), OutDim = parse.GetValue(outDim), WarmupEpochs = parse.GetValue(warmup),
                Seed = parse.GetValue(seed), BaseLearningRate = parse.GetValue(lr), MinLearningRate = parse.GetValue(minLr),
                WeightDecay = parse.GetValue(weightDecay), WeightDecayEnd = parse.GetValue(weightDecayEnd),
                ClipGrad = parse.GetValue(clipGrad), FreezeLastLayerEpochs = parse.GetValue(freeze),
                TeacherTemperature = parse.GetValue(teacherTemp), WarmupTeacherTemperature = parse.GetValue(warmupTeacherTemp),
                TeacherMomentum = parse.GetValue(momentum), Overwrite = parse.GetValue(overwrite),
                Augmentation = new DinoAugmentation
                {
                    LocalCrops = parse.GetValue(local), GlobalSize = parse.GetValue(globalSize), LocalSize = parse.GetValue(localSize),
                    GlobalScale = Scale(parse.GetValue(globalScale)!), LocalScale = Scale(parse.GetValue(localScale)!),
                },
            };
            options.Validate(); // before any slide or image is opened
            using var images = inputs.Open(parse);
            Console.WriteLine($"DINO on {images.Describe()}");
            string runDir = parse.GetValue(output)!.FullName;
            IReadOnlyList<double> losses = [];
            Progress.Training("DINO", report => losses = DinoTraining.Run(images, options, runDir, log: Console.Error.WriteLine,
                progress: p => report((p.Epoch - 1L) * p.Iterations + p.Iteration, (long)p.Epochs * p.Iterations,
                    $"epoch {p.Epoch}/{p.Epochs} loss {p.Loss:0.000} teacher entropy {p.TeacherEntropy:0.00} "
                    + $"(batch {p.TeacherMarginalEntropy:0.00}) lr {p.LearningRate:0.0e0}")));
            Console.WriteLine($"{images.Count} patches, {losses.Count} epoch(s); mean loss per epoch: "
                + $"{string.Join(", ", losses.Select(l => l.ToString("0.000")))}");
            Console.WriteLine($"Teacher backbone: {Path.Combine(runDir, DinoTraining.BackboneFile)} (use 'histo embed --encoder "
                + $"{runDir}')");
            return 0;
        }));
        return command;
    }

    /// <summary>An option with a description and a default (the training commands' options).</summary>
    internal static Option<T> With<T>(string name, string description, T fallback) =>
        new(name) { Description = description, DefaultValueFactory = _ => fallback };

    /// <summary>An option taking two numbers, "min max".</summary>
    static Option<double[]> ScaleOption(string name, string description, (double Min, double Max) fallback) => new(name)
    {
        Description = description, Arity = new ArgumentArity(2, 2), AllowMultipleArgumentsPerToken = true,
        DefaultValueFactory = _ => [fallback.Min, fallback.Max],
    };

    static (double Min, double Max) Scale(double[] values) => (values[0], values[1]);

}

/// <summary>The unlabelled patches a training command reads: a folder of images, or tiled slides read at their coordinates.</summary>
sealed class PatchInputs
{
    public Option<DirectoryInfo> Patches { get; } = new("--patches")
    {
        Description = "Folder of patch images (e.g. patches/ of 'histo tile --save-patches').",
    };
    public Option<string[]> Slides { get; } = new("--slides")
    {
        Description = "Slide files or folders, read patch by patch at the coordinates of 'histo tile' (with --coords).",
        AllowMultipleArgumentsPerToken = true,
    };
    public Option<DirectoryInfo> Coords { get; } = new("--coords")
    {
        Description = "Output folder of 'histo tile' (coords/<slide_id>.h5), for --slides.",
    };

    /// <summary>The patches; slides that cannot be read are reported on stderr and left out.</summary>
    public IPatchSource Open(ParseResult parse)
    {
        var (patches, slides, coords) = (parse.GetValue(Patches), parse.GetValue(Slides), parse.GetValue(Coords));
        bool fromSlides = slides is { Length: > 0 };
        if (patches is null == !fromSlides)
            throw new UsageException("give either --patches DIR (patch images) or --slides SLIDES --coords DIR (tiled slides)");
        if (patches is not null) return new ImageFolderPatches(patches.FullName);
        if (coords is null) throw new UsageException("--slides needs --coords DIR, the output folder of 'histo tile' for these slides");
        var source = new SlidePatches(SlideBatch.Expand(slides!), coords.FullName);
        foreach (var skipped in source.Skipped) Console.Error.WriteLine($"skipped: {skipped}");
        return source;
    }
}
