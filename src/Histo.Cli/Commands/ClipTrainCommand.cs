using System.CommandLine;
using Histo.VisionLanguage;

namespace Histo.Cli.Commands;

/// <summary><c>histo clip-train</c>: contrastive image-text training (CLIP's InfoNCE) on image-caption pairs.</summary>
static class ClipTrainCommand
{
    public static Command Create()
    {
        var d = new ContrastiveOptions();
        var pairs = new Option<FileInfo>("--pairs") { Description = "CSV with image and caption columns (image paths relative to the "
            + "CSV), e.g. captions/captions.csv from histo synth --captions.", Required = true };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Run folder (resumable; a model for histo zeroshot "
            + "--model RUN after every epoch).", Required = true };
        var imageEncoder = PretrainCommand.With("--image-encoder", "Image tower: an encoder of histo encoders.", d.ImageEncoder);
        var imageSize = PretrainCommand.With("--image-size", "Side the image tower sees.", d.ImageSize);
        var textEncoder = PretrainCommand.With("--text-encoder",
            "transformer (CLIP's text tower) or bow (bag of words, CLIP's cheap baseline).",
            d.TextEncoder);
        var tokenizer = PretrainCommand.With("--tokenizer", "clip, a merges file, or a histo bpe-train folder.", d.Tokenizer);
        var embedDim = PretrainCommand.With("--embed-dim", "Shared embedding size.", d.EmbedDim);
        var textWidth = PretrainCommand.With("--text-width", "Text tower width.", d.TextWidth);
        var textLayers = PretrainCommand.With("--text-layers", "Text transformer layers.", d.TextLayers);
        var context = PretrainCommand.With("--context", "Tokens per caption (longer ones are cut).", d.Context);
        var epochs = PretrainCommand.With("--epochs", "Epochs (a finished run can be extended).", d.Epochs);
        var batch = PretrainCommand.With("--batch-size", "Pairs per batch (each pair's negatives are the batch's others).", d.BatchSize);
        var lr = PretrainCommand.With("--lr", "Peak learning rate (warm-up, then cosine decay).", d.LearningRate);
        var weightDecay = PretrainCommand.With("--weight-decay", "AdamW weight decay on weight matrices.", d.WeightDecay);
        var warmup = PretrainCommand.With("--warmup-epochs", "Warm-up epochs.", d.WarmupEpochs);
        var lockImage = new Option<bool>("--lock-image") { Description = "LiT: keep the image tower as initialised and train the "
            + "projections and the text tower (image features computed once)." };
        var seed = PretrainCommand.With("--seed", "Random seed.", d.Seed);
        var overwrite = new Option<bool>("--overwrite") { Description = "Start the run again with other settings." };
        var command = new Command("clip-train", "Train a small vision-language model on image-caption pairs with CLIP's symmetric "
            + "InfoNCE; the run works as histo zeroshot --model RUN.")
        {
            pairs, output, imageEncoder, imageSize, textEncoder, tokenizer, embedDim, textWidth, textLayers, context, epochs, batch, lr,
            weightDecay, warmup, lockImage, seed, overwrite,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new ContrastiveOptions
            {
                ImageEncoder = parse.GetValue(imageEncoder)!, ImageSize = parse.GetValue(imageSize),
                    TextEncoder = parse.GetValue(textEncoder)!,
                Tokenizer = parse.GetValue(tokenizer)!, EmbedDim = parse.GetValue(embedDim), TextWidth = parse.GetValue(textWidth),
                TextLayers = parse.GetValue(textLayers), Context = parse.GetValue(context), Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batch), LearningRate = parse.GetValue(lr), WeightDecay = parse.GetValue(weightDecay),
                WarmupEpochs = parse.GetValue(warmup), LockImage = parse.GetValue(lockImage), Seed = parse.GetValue(seed),
                Overwrite = parse.GetValue(overwrite),
            };
            options.Validate();
            string runDir = parse.GetValue(output)!.FullName;
            IReadOnlyList<double> losses = [];
            Progress.Training("clip-train", report => losses = ContrastiveTraining.Run(parse.GetValue(pairs)!.FullName, options, runDir,
                p => report((p.Epoch - 1L) * p.Iterations + p.Iteration, (long)p.Epochs * p.Iterations,
                    $"epoch {p.Epoch}/{p.Epochs} loss {p.Loss:0.000} batch accuracy {p.Accuracy:0.00}"), Console.Error.WriteLine));
            Console.WriteLine($"{losses.Count} epoch(s); mean InfoNCE per epoch: "
                + string.Join(", ", losses.Select(l => l.ToString("0.000"))));
            Console.WriteLine($"Model: {runDir} (use 'histo zeroshot --model {runDir} --prompts FILE ...')");
            return 0;
        }));
        return command;
    }
}
