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
        var patches = new Option<DirectoryInfo>("--patches") { Description = "Folder of patch images (e.g. patches/ of 'histo tile --save-patches')." };
        var slides = new Option<string[]>("--slides") { Description = "Slide files or folders, read patch by patch at the coordinates of 'histo tile' (with --coords).", AllowMultipleArgumentsPerToken = true };
        var coords = new Option<DirectoryInfo>("--coords") { Description = "Output folder of 'histo tile' (coords/<slide_id>.h5), for --slides." };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Run folder (checkpoint per epoch; teacher backbone for 'histo embed --encoder RUN').", Required = true };
        var arch = new Option<string>("--arch") { Description = "Backbone, randomly initialised: " + string.Join(", ", Histo.Models.EncoderRegistry.All.Where(e => e.Weights == "none").Select(e => e.Name)) + ".", DefaultValueFactory = _ => d.Arch };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => d.Epochs };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => d.BatchSize };
        var outDim = new Option<int>("--out-dim") { Description = "Head outputs K.", DefaultValueFactory = _ => d.OutDim };
        var local = new Option<int>("--local-crops") { DefaultValueFactory = _ => d.Augmentation.LocalCrops };
        var globalSize = new Option<int>("--global-size") { Description = "Global crop size in pixels (DINO: 224; the encoder's input size).", DefaultValueFactory = _ => d.Augmentation.GlobalSize };
        var localSize = new Option<int>("--local-size") { Description = "Local crop size in pixels (DINO: 96).", DefaultValueFactory = _ => d.Augmentation.LocalSize };
        var warmup = new Option<int>("--warmup-epochs") { Description = "Learning-rate warm-up epochs.", DefaultValueFactory = _ => d.WarmupEpochs };
        var lr = new Option<double>("--lr") { Description = "Base learning rate, scaled by batch / 256 (DINO: 5e-4).", DefaultValueFactory = _ => d.BaseLearningRate };
        var teacherTemp = new Option<double>("--teacher-temp") { Description = "Teacher temperature after warm-up (DINO: 0.04; lower, e.g. 0.02, sharpens more against collapse).", DefaultValueFactory = _ => d.TeacherTemperature };
        var warmupTeacherTemp = new Option<double>("--warmup-teacher-temp") { Description = "Teacher temperature at the start of its linear warm-up.", DefaultValueFactory = _ => d.WarmupTeacherTemperature };
        var momentum = new Option<double>("--momentum-teacher") { Description = "Teacher EMA momentum at the start (cosine to 1; DINO: 0.996).", DefaultValueFactory = _ => d.TeacherMomentum };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => d.Seed };
        var command = new Command("pretrain", "Self-supervised pretraining with DINO on patch images; resumes from the run folder.")
        {
            patches, slides, coords, output, arch, epochs, batch, outDim, local, globalSize, localSize, warmup, lr, teacherTemp, warmupTeacherTemp, momentum, seed,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new DinoOptions
            {
                Arch = parse.GetValue(arch)!, Epochs = parse.GetValue(epochs), BatchSize = parse.GetValue(batch), OutDim = parse.GetValue(outDim),
                WarmupEpochs = parse.GetValue(warmup), Seed = parse.GetValue(seed), BaseLearningRate = parse.GetValue(lr),
                TeacherTemperature = parse.GetValue(teacherTemp), WarmupTeacherTemperature = parse.GetValue(warmupTeacherTemp), TeacherMomentum = parse.GetValue(momentum),
                Augmentation = new DinoAugmentation { LocalCrops = parse.GetValue(local), GlobalSize = parse.GetValue(globalSize), LocalSize = parse.GetValue(localSize) },
            };
            using var images = OpenPatches(parse.GetValue(patches), parse.GetValue(slides), parse.GetValue(coords));
            if (images is SlidePatches sp) foreach (var skipped in sp.Skipped) Console.Error.WriteLine($"skipped: {skipped}");
            Console.WriteLine($"DINO on {images.Describe()}");
            string runDir = parse.GetValue(output)!.FullName;
            IReadOnlyList<double> losses = [];
            AnsiConsole.Progress().AutoClear(false).AutoRefresh(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("DINO", maxValue: 1);
                    var refresh = Progress.Throttled(ctx); // no refresh thread: see Progress.Throttled
                    losses = DinoTraining.Run(images, options, runDir, p =>
                    {
                        task.MaxValue = p.Epochs * p.Iterations;
                        task.Value = (p.Epoch - 1) * p.Iterations + p.Iteration;
                        task.Description = $"DINO epoch {p.Epoch}/{p.Epochs} [grey]loss {p.Loss:0.000} teacher entropy {p.TeacherEntropy:0.00} (batch {p.TeacherMarginalEntropy:0.00}) lr {p.LearningRate:0.0e0}[/]";
                        refresh();
                    });
                });
            Console.WriteLine($"{images.Count} patches, {losses.Count} epoch(s); mean loss per epoch: {string.Join(", ", losses.Select(l => l.ToString("0.000")))}");
            Console.WriteLine($"Teacher backbone: {Path.Combine(runDir, DinoTraining.BackboneFile)} (use 'histo embed --encoder {runDir}')");
            return 0;
        }));
        return command;
    }

    static IPatchSource OpenPatches(DirectoryInfo? patches, string[]? slides, DirectoryInfo? coords)
    {
        bool fromSlides = slides is { Length: > 0 };
        if (patches is null == !fromSlides)
            throw new UsageException("give either --patches DIR (patch images) or --slides SLIDES --coords DIR (tiled slides)");
        if (patches is not null) return new ImageFolderPatches(patches.FullName);
        if (coords is null) throw new UsageException("--slides needs --coords DIR, the output folder of 'histo tile' for these slides");
        return new SlidePatches(SlideBatch.Expand(slides!), coords.FullName);
    }
}
