using System.CommandLine;
using Histo.Mil;
using Spectre.Console;

namespace Histo.Cli.Commands;

static class TrainCommand
{
    public static Command Create()
    {
        var defaults = new MilTrainingOptions();
        var features = new Option<DirectoryInfo>("--features") { Description = "Output folder of 'histo embed' "
            + "(features/<slide_id>.h5).", Required = true };
        var labels = new Option<FileInfo>("--labels") { Description = "CLAM label CSV: case_id,slide_id,label (and grade for --task "
            + "grade).", Required = true };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Run folder.", Required = true };
        var model = new Option<string>("--model") { Description = $"MIL model: "
            + $"{string.Join(", ", MilRegistry.All.Select(m => m.Name))}.", DefaultValueFactory = _ => defaults.Model };
        var task = new Option<string>("--task") { Description = "subtype (the label column) or grade (the grade column).",
            DefaultValueFactory = _ => "subtype" };
        var head = new Option<string?>("--head") { Description = "softmax (default for subtype), coral (default for grade) or corn." };
        var folds = new Option<int>("--folds") { Description = "Cross-validation folds by case.",
            DefaultValueFactory = _ => defaults.Folds };
        var epochs = new Option<int>("--epochs") { Description = "Most epochs per fold (early stopping on validation loss).",
            DefaultValueFactory = _ => defaults.MaxEpochs };
        var lr = new Option<double>("--lr") { Description = "AdamW learning rate.", DefaultValueFactory = _ => defaults.LearningRate };
        var weightDecay = new Option<double>("--weight-decay") { Description = "AdamW weight decay.",
            DefaultValueFactory = _ => defaults.WeightDecay };
        var seed = new Option<int>("--seed") { Description = "Seed for splits, initialisation and order.",
            DefaultValueFactory = _ => defaults.Seed };
        var splits = new Option<DirectoryInfo?>("--splits") { Description = "Reuse CLAM-style splits_{i}.csv from this folder." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Redo a run folder made with other settings (its folds are "
            + "deleted)." };
        var classBalance = new Option<string>("--class-balance") { Description = "on: scale each bag's loss by n / (K n_c) so every "
            + "class weighs the same; off: every bag weighs 1.", DefaultValueFactory = _ => defaults.ClassBalance ? "on" : "off" };
        var cacheGb = new Option<double>("--cache-gb") { Description = "Most GB of bag features kept in memory; bags beyond it are "
            + "read again from their .h5 files (default: a quarter of this machine's memory).",
            DefaultValueFactory = _ => defaults.BagCacheBytes / 1e9 };
        var distillFrom = new Option<DirectoryInfo?>("--distill-from")
        {
            Description = "A trained teacher run (softmax head): each training bag also learns the teacher's soft targets, from the "
                + "teacher's model of the same fold, on the teacher's splits.",
        };
        var teacherFeatures = new Option<DirectoryInfo?>("--teacher-features")
        {
            Description = "The teacher's features folder, when the student trains on other features (default: --features).",
        };
        var alpha = new Option<double>("--alpha")
        {
            Description = "Weight of the soft targets, (1 - alpha) on the labels (RepDistiller's KD: 0.9).",
            DefaultValueFactory = _ => Histo.Distillation.SoftTargets.DefaultAlpha,
        };
        var temperature = new Option<double>("--temperature")
        {
            Description = "Softmax temperature of the soft targets (RepDistiller: 4).",
            DefaultValueFactory = _ => Histo.Distillation.SoftTargets.DefaultTemperature,
        };
        var patience = new Option<int>("--patience")
        {
            Description = "Early stopping: epochs without a lower validation loss before a fold stops.",
            DefaultValueFactory = _ => defaults.Patience,
        };
        var minEpochs = new Option<int>("--min-epochs")
        {
            Description = "No early stop before this epoch (CLAM's stop_epoch).", DefaultValueFactory = _ => defaults.MinEpochs,
        };
        var fold = new Option<int?>("--fold")
        {
            Description = "Train only fold i (0-based; one fold per array task, e.g. --fold $SLURM_ARRAY_TASK_ID); the last fold "
                + "to finish writes the summary.",
        };
        var summarise = new Option<bool>("--summarise")
        {
            Description = "Train nothing: write the summary, ROC and curves from the finished folds, naming any that are not.",
        };
        var command = new Command("train", "Train a MIL model with k-fold cross-validation by case; writes per-fold and summary metrics.")
        {
            features, labels, output, model, task, head, folds, epochs, lr, weightDecay, seed, splits, classBalance, cacheGb, overwrite,
            distillFrom, teacherFeatures, alpha, temperature, patience, minEpochs, fold, summarise,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var milTask = parse.GetValue(task) switch
            {
                "subtype" => MilTask.Subtype,
                "grade" => MilTask.Grade,
                var t => throw new UsageException($"--task '{t}' must be subtype or grade"),
            };
            var headKind = (parse.GetValue(head) ?? (milTask == MilTask.Grade ? "coral" : "softmax")) switch
            {
                "softmax" => HeadKind.Softmax,
                "coral" => HeadKind.Coral,
                "corn" => HeadKind.Corn,
                var h => throw new UsageException($"--head '{h}' must be softmax, coral or corn"),
            };
            var options = new MilTrainingOptions
            {
                Model = parse.GetValue(model)!, Task = milTask, Head = headKind, Folds = parse.GetValue(folds), MaxEpochs = parse.GetValue(epochs),
                LearningRate = parse.GetValue(lr), WeightDecay = parse.GetValue(weightDecay), Seed = parse.GetValue(seed),
                SplitsDir = parse.GetValue(splits)?.FullName, Overwrite = parse.GetValue(overwrite),
                BagCacheBytes = CacheBytes(parse.GetValue(cacheGb)), Fold = parse.GetValue(fold),
                SummariseOnly = parse.GetValue(summarise), Patience = parse.GetValue(patience), MinEpochs = parse.GetValue(minEpochs),
                Distillation = parse.GetValue(distillFrom) is { } teacher
                    ? new MilDistillation(teacher.FullName, parse.GetValue(teacherFeatures)?.FullName, parse.GetValue(alpha),
                        parse.GetValue(temperature))
                    : null,
                ClassBalance = parse.GetValue(classBalance) switch
                {
                    "on" => true,
                    "off" => false,
                    var b => throw new UsageException($"--class-balance '{b}' must be on or off"),
                },
            };
            if (parse.GetValue(teacherFeatures) is not null && options.Distillation is null)
                throw new UsageException("--teacher-features goes with --distill-from RUN");
            options.Validate(); // usage errors before any file is read
            var data = MilDataset.Load(parse.GetValue(labels)!.FullName, parse.GetValue(features)!.FullName, milTask);
            foreach (var w in data.Warnings) Console.Error.WriteLine($"warning: {w}");
            string runDir = parse.GetValue(output)!.FullName;
            var messages = new List<string>();
            Spectre.Console.AnsiConsole.Progress().AutoClear(false).AutoRefresh(false)
                .Columns(new Spectre.Console.TaskDescriptionColumn(), new Spectre.Console.ProgressBarColumn(),
                    new Spectre.Console.PercentageColumn(), new Spectre.Console.ElapsedTimeColumn())
                .Start(ctx =>
                {
                    var tasks = new Dictionary<int, Spectre.Console.ProgressTask>();
                    var refresh = Progress.Throttled(ctx); // no refresh thread: see Progress.Throttled
                    MilTraining.Run(data, options, runDir, messages.Add, p =>
                    {
                        if (!tasks.TryGetValue(p.Fold, out var task))
                            tasks[p.Fold] = task = ctx.AddTask($"fold {p.Fold}", maxValue: p.MaxEpochs);
                        task.Value = p.Stopped ? p.MaxEpochs : p.Epoch;
                        task.Description = $"fold {p.Fold} epoch {p.Epoch} [grey]train {p.TrainLoss:0.000} val "
                            + $"{p.ValLoss:0.000}[/]{(p.Stopped ? " [green]done[/]" : "")}";
                        refresh();
                    });
                });
            foreach (var m in messages) Console.WriteLine(m);
            // A fold task that is not the last has no summary to show yet.
            string summary = Path.Combine(runDir, "summary.md");
            if (File.Exists(summary) && !messages.Any(m => m.Contains("the summary is written after the last")))
                Console.WriteLine(File.ReadAllText(summary));
            return 0;
        }));
        return command;
    }

    static long CacheBytes(double gb)
    {
        Require.NonNegative("--cache-gb", gb);
        return (long)Math.Min(gb * 1e9, long.MaxValue / 2.0);
    }
}
