using System.CommandLine;
using Histo.VisionLanguage;

namespace Histo.Cli.Commands;

/// <summary><c>histo zeroshot</c>: classify images by prompts with a CLIP-layout vision-language model.</summary>
static class ZeroShotCommand
{
    public static Command Create()
    {
        var images = new Argument<FileInfo[]>("images") { Description = "Image files (patches).", Arity = ArgumentArity.ZeroOrMore };
        var features = new Option<DirectoryInfo?>("--features") { Description = "Slides instead of images: a folder of .h5 patch features "
            + "from this model's image tower (e.g. TRIDENT's conch_v1), pooled per slide as MI-Zero does." };
        var topK = new Option<string>("--topk") { Description = "K values of MI-Zero's top-K pooling (mean pooling is always added).",
            DefaultValueFactory = _ => string.Join(',', ZeroShot.DefaultTopK) };
        var weights = new Option<string>("--weights", "--model") { Description = "CLIP checkpoint in OpenAI's layout (safetensors or a "
            + "torch.save state dict), or a histo clip-train run folder.", Required = true };
        var prompts = new Option<FileInfo>("--prompts") { Description = "Prompt file: {\"classnames\": {class: [names]}, "
            + "\"templates\": [\"... CLASSNAME ...\"]} (CONCH and MI-Zero's layout).", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "clip, a merges file, or a folder written by histo bpe-train "
            + "(default: a run's own tokenizer, else clip)." };
        var labels = new Option<FileInfo?>("--labels") { Description = "CSV image,label (file name, a class of the prompt file), or "
            + "with --features CLAM's case_id,slide_id,label: prints accuracy and balanced accuracy (and AUC for slides)." };
        var slides = new Option<DirectoryInfo?>("--slides") { Description = "With --features: the slides, for a heatmap per slide and "
            + "class of the patches' similarity to the class (heatmaps/SLIDE.CLASS.png)." };
        var gelu = new Option<bool>("--gelu") { Description = "The checkpoint's MLPs use GELU (open_clip models such as QuiltNet), "
            + "not OpenAI's QuickGELU (OpenAI CLIP, PLIP)." };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Output folder for predictions.csv (images) or "
            + "slide-predictions.csv and slide-metrics.csv (slides).", Required = true };
        var command = new Command("zeroshot", "Zero-shot classification of images by text prompts: the class whose prompt "
            + "embeddings (averaged over templates and names) are closest to the image's.")
        {
            images, weights, prompts, tokenizer, labels, output, features, topK, gelu, slides,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var files = parse.GetValue(images) ?? [];
            if ((files.Length > 0) == (parse.GetValue(features) is not null))
                throw new UsageException("give image files or --features DIR (slides), not both or neither");
            if (parse.GetValue(features) is { } featuresDir)
            {
                var k = parse.GetValue(topK)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(v =>
                    int.TryParse(v, out int n) ? n : throw new UsageException($"--topk '{v}' is not a whole number")).ToList();
                var (predictions, poolMetrics) = ZeroShot.ClassifySlides(Path.GetFullPath(parse.GetValue(weights)!),
                    parse.GetValue(prompts)!.FullName,
                    parse.GetValue(tokenizer), featuresDir.FullName, parse.GetValue(labels)?.FullName, k,
                        parse.GetValue(output)!.FullName, parse.GetValue(gelu),
                    parse.GetValue(slides)?.FullName);
                Console.WriteLine($"{predictions.Select(p => p.SlideId).Distinct().Count()} slide(s) -> "
                    + Path.Combine(parse.GetValue(output)!.FullName, "slide-predictions.csv"));
                foreach (var m in poolMetrics)
                    Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{m.Pooling,-7} {m.Slides} slides: "
                        + $"accuracy {m.Metrics.Accuracy:F3}, balanced accuracy {m.Metrics.BalancedAccuracy:F3}, AUC {m.Auc:F3}"));
                return 0;
            }
            var (count, metrics, path) = ZeroShot.ClassifyImages(Path.GetFullPath(parse.GetValue(weights)!),
                parse.GetValue(prompts)!.FullName,
                parse.GetValue(tokenizer), files.Select(f => f.FullName).ToList(), parse.GetValue(labels)?.FullName,
                parse.GetValue(output)!.FullName, parse.GetValue(gelu));
            Console.WriteLine($"{count} image(s) -> {path}");
            if (metrics is not null)
                Console.WriteLine($"accuracy {metrics.Accuracy:F3}, balanced accuracy {metrics.BalancedAccuracy:F3}");
            return 0;
        }));
        return command;
    }
}
