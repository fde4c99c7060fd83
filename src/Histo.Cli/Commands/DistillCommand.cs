using System.CommandLine;
using Histo.Distillation;
using static Histo.Cli.Commands.PretrainCommand;

namespace Histo.Cli.Commands;

static class DistillCommand
{
    public static Command Create()
    {
        var d = new DistillOptions();
        var inputs = new PatchInputs();
        var output = new Option<DirectoryInfo>("--output", "-o")
        {
            Description = "Run folder (teacher targets, checkpoint per epoch; the student for 'histo embed --encoder RUN').",
            Required = true,
        };
        var teacher = With("--teacher", "The teacher: a registered encoder, a checkpoint or a pretrain/distill run.", d.Teacher);
        var teacherWeights = new Option<string>("--teacher-weights")
        {
            Description = "The teacher's weights file, for the registered foundation models (UNI, Virchow, ...).",
        };
        string students = string.Join(", ", Histo.Models.EncoderRegistry.All.Where(e => e.Weights == "none").Select(e => e.Name));
        var student = With("--student", $"Student architecture, randomly initialised: {students}.", d.Student);
        var inputSize = With("--input-size", "Student input side in pixels (the teacher sees its own).", d.InputSize);
        var loss = new Option<string>("--loss")
        {
            Description = "Loss terms, comma-separated: cosine (1 - cos to the teacher's feature), mse, at (attention transfer, "
                + "ResNet teacher and student).",
            DefaultValueFactory = _ => string.Join(",", d.Losses),
        };
        var views = With("--views", "Fixed views per patch (the patch and DINO global crops), each embedded once by the teacher.",
            d.Views);
        var epochs = With("--epochs", "Epochs; a finished run given more epochs continues with a schedule for the new length.", d.Epochs);
        var batch = With("--batch-size", "Patches per iteration.", d.BatchSize);
        var lr = With("--lr", "Peak learning rate of AdamW.", d.LearningRate);
        var weightDecay = With("--weight-decay", "AdamW weight decay (weights of 2+ dimensions).", d.WeightDecay);
        var warmup = With("--warmup-epochs", "Linear learning-rate warm-up epochs, then a cosine.", d.WarmupEpochs);
        var beta = With("--beta", "Weight of attention transfer (Zagoruyko and Komodakis: 1000).", d.Beta);
        var seed = With("--seed", "Seed of every random step (views, initialisation, order).", d.Seed);
        var overwrite = new Option<bool>("--overwrite") { Description = "Start afresh in a run folder holding a run with other settings." };
        var command = new Command("distill",
            "Distil a patch encoder into a small, fast student on unlabelled patches; resumes from the run folder, or extends it "
            + "with more --epochs.")
        {
            inputs.Patches, inputs.Slides, inputs.Coords, output, teacher, teacherWeights, student, inputSize, loss, views, epochs,
            batch, lr, weightDecay, warmup, beta, seed, overwrite,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new DistillOptions
            {
                Teacher = parse.GetValue(teacher)!, TeacherWeights = parse.GetValue(teacherWeights), Student = parse.GetValue(student)!,
                InputSize = parse.GetValue(inputSize),
                Losses = parse.GetValue(loss)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Views = parse.GetValue(views), Epochs = parse.GetValue(epochs), BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr), WeightDecay = parse.GetValue(weightDecay), WarmupEpochs = parse.GetValue(warmup),
                Beta = parse.GetValue(beta), Seed = parse.GetValue(seed), Overwrite = parse.GetValue(overwrite),
            };
            options.Validate(); // before any slide or image is opened
            using var images = inputs.Open(parse);
            Console.WriteLine($"Distilling {options.Teacher} into {options.Student} on {images.Describe()}");
            string runDir = parse.GetValue(output)!.FullName;
            IReadOnlyList<double> losses = [];
            Progress.Training("distill", report => losses = EncoderDistillation.Run(images, options, runDir, log: Console.Error.WriteLine,
                progress: p => report(p.Teacher ? p.Iteration : (p.Epoch - 1L) * p.Iterations + p.Iteration,
                    p.Teacher ? p.Iterations : (long)p.Epochs * p.Iterations,
                    p.Teacher ? $"teacher targets {p.Iteration}/{p.Iterations}"
                        : $"epoch {p.Epoch}/{p.Epochs} loss {p.Loss:0.000} "
                            + string.Join(" ", p.Terms.Select(t => $"{t.Key} {t.Value:0.000}")))));
            Console.WriteLine($"{images.Count} patches, {losses.Count} epoch(s); mean loss per epoch: "
                + $"{string.Join(", ", losses.Select(l => l.ToString("0.000")))}");
            Console.WriteLine($"Student: {Path.Combine(runDir, DistilledEncoder.WeightsFile)} (use 'histo embed --encoder {runDir}')");
            return 0;
        }));
        return command;
    }
}
