using System.CommandLine;
using Histo.Imaging;
using Histo.Models;
using Histo.Pipeline;
using Histo.Slides;
using Spectre.Console;

namespace Histo.Cli.Commands;

static class EmbedCommand
{
    public static Command Create()
    {
        var defaults = new EmbeddingJobOptions { Slides = [], CoordsDir = "", OutputDir = "" };
        var slides = new Argument<string[]>("slides") { Description = "Slide files or folders of slides.",
            Arity = ArgumentArity.OneOrMore };
        var coords = new Option<DirectoryInfo>("--coords") { Description = "Output folder of 'histo tile' (coords/<slide_id>.h5).",
            Required = true };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Output folder (features/<slide_id>.h5).",
            Required = true };
        var encoder = new Option<string>("--encoder") { Description = $"Encoder name "
            + $"({string.Join(", ", EncoderRegistry.All.Select(e => e.Name))}) or checkpoint file.", DefaultValueFactory = _ =>
                EncoderRegistry.Default };
        var weights = new Option<FileInfo?>("--weights") { Description = "Weights file of a registered encoder (pytorch_model.bin, "
            + "model.safetensors or .pth as published); the foundation models need one: 'histo encoders' lists them." };
        var weightsConfig = new Option<FileInfo?>("--weights-config") { Description = "JSON of encoder name to weights file "
            + $"(TRIDENT's local_ckpts.json), used when --weights is not given; default ${WeightsConfig.Variable}." };
        var batchSize = new Option<int>("--batch-size") { Description = "Patches per forward pass.",
            DefaultValueFactory = _ => defaults.BatchSize };
        var threads = new Option<int>("--threads") { Description = "Threads for the network.",
            DefaultValueFactory = _ => defaults.Threads };
        var precision = new Option<string>("--precision") { Description = "auto: the encoder's default ('histo encoders'), bf16 "
            + "only on CPUs with AVX-512-BF16 or AMX; or fp32, bf16. Features stay float32.", DefaultValueFactory = _ => "auto" };
        var stainNorm = new Option<string?>("--stain-norm") { Description = "Normalise every patch's staining before the encoder: "
            + "macenko or reinhard (torchstain's methods); needs --stain-target." };
        var stainTarget = new Option<FileInfo?>("--stain-target") { Description = "The image whose staining patches are mapped to." };
        var shard = CommonOptions.Shard();
        var skipErrors = new Option<bool>("--skip-errors") { Description = "Go on past slides that fail and list them at the end." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Redo slides that already have features." };
        var command = new Command("embed",
            "Turn every tiled patch into a feature vector: features/<slide_id>.h5 with 'features' [N, D] and 'coords' [N, 2] "
                + "(CLAM/TRIDENT layout).")
        {
            slides, coords, output, encoder, weights, weightsConfig, batchSize, threads, precision, stainNorm, stainTarget, shard,
            skipErrors, overwrite,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new EmbeddingJobOptions
            {
                Slides = parse.GetValue(slides)!,
                CoordsDir = parse.GetValue(coords)!.FullName,
                OutputDir = parse.GetValue(output)!.FullName,
                Encoder = parse.GetValue(encoder)!,
                Weights = parse.GetValue(weights)?.FullName,
                WeightsConfigFile = parse.GetValue(weightsConfig)?.FullName,
                BatchSize = parse.GetValue(batchSize),
                Threads = parse.GetValue(threads),
                Precision = ComputePrecision.Resolve(parse.GetValue(precision), parse.GetValue(encoder)!),
                StainNorm = parse.GetValue(stainNorm) switch
                {
                    null => null,
                    "macenko" => StainMethod.Macenko,
                    "reinhard" => StainMethod.Reinhard,
                    var m => throw new UsageException($"--stain-norm '{m}' must be macenko or reinhard"),
                },
                StainTarget = parse.GetValue(stainTarget)?.FullName,
                Shard = parse.GetValue(shard) is { } s ? SlideBatch.ParseShard(s) : null,
                SkipErrors = parse.GetValue(skipErrors),
                Overwrite = parse.GetValue(overwrite),
            };
            IReadOnlyList<SlideOutcome> outcomes = [];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long patches = 0;
            AnsiConsole.Progress().AutoClear(false).AutoRefresh(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(),
                    new SpinnerColumn())
                .Start(ctx =>
                {
                    var files = SlideBatch.Expand(options.Slides);
                    var task = ctx.AddTask("Embedding", maxValue: Math.Max(1, files.Count));
                    var refresh = Progress.Throttled(ctx); // no refresh thread: see Progress.Throttled
                    outcomes = EmbeddingJob.Run(options,
                        o =>
                        {
                            if (o.Status == SlideStatus.Failed) Console.Error.WriteLine($"error: {o.Error}");
                            task.Increment(1);
                            refresh();
                        },
                        n =>
                        {
                            patches += n;
                            task.Description = $"Embedding [grey]{patches / Math.Max(clock.Elapsed.TotalSeconds, 1e-3):0} patches/s[/]";
                            refresh();
                        },
                        m => Console.Error.WriteLine($"note: {m}"));
                    task.Value = task.MaxValue;
                });
            int failed = outcomes.Count(o => o.Status == SlideStatus.Failed);
            Console.WriteLine($"Embedded {outcomes.Count(o => o.Status == SlideStatus.Done)} slide(s), skipped "
                + $"{outcomes.Count(o => o.Status == SlideStatus.Skipped)}, {failed} failed; {patches} patches in "
                    + $"{clock.Elapsed.TotalSeconds:0.0} s -> {options.OutputDir}/features");
            foreach (var f in outcomes.Where(o => o.Status == SlideStatus.Failed)) Console.Error.WriteLine($"  {f.SlideId}: {f.Error}");
            return failed == 0 ? 0 : 1;
        }));
        return command;
    }
}
