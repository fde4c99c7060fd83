using System.CommandLine;
using Histo.VisionLanguage;

namespace Histo.Cli.Commands;

/// <summary><c>histo zeroshot</c>: classify images by prompts with a CLIP-layout vision-language model.</summary>
static class ZeroShotCommand
{
    public static Command Create()
    {
        var images = new Argument<FileInfo[]>("images") { Description = "Image files (patches).", Arity = ArgumentArity.OneOrMore };
        var weights = new Option<FileInfo>("--weights") { Description = "CLIP checkpoint in OpenAI's layout (safetensors or a "
            + "torch.save state dict).", Required = true };
        var prompts = new Option<FileInfo>("--prompts") { Description = "Prompt file: {\"classnames\": {class: [names]}, "
            + "\"templates\": [\"... CLASSNAME ...\"]} (CONCH and MI-Zero's layout).", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "clip, a merges file, or a folder written by histo bpe-train.",
            DefaultValueFactory = _ => "clip" };
        var labels = new Option<FileInfo?>("--labels") { Description = "CSV image,label (file name, a class of the prompt file): "
            + "prints accuracy and balanced accuracy." };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Output folder for predictions.csv.", Required = true };
        var command = new Command("zeroshot", "Zero-shot classification of images by text prompts: the class whose prompt "
            + "embeddings (averaged over templates and names) are closest to the image's.")
        {
            images, weights, prompts, tokenizer, labels, output,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var (count, metrics, path) = ZeroShot.ClassifyImages(parse.GetValue(weights)!.FullName, parse.GetValue(prompts)!.FullName,
                parse.GetValue(tokenizer)!, parse.GetValue(images)!.Select(f => f.FullName).ToList(), parse.GetValue(labels)?.FullName,
                parse.GetValue(output)!.FullName);
            Console.WriteLine($"{count} image(s) -> {path}");
            if (metrics is not null)
                Console.WriteLine($"accuracy {metrics.Accuracy:F3}, balanced accuracy {metrics.BalancedAccuracy:F3}");
            return 0;
        }));
        return command;
    }
}
