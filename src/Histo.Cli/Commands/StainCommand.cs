using System.CommandLine;
using Histo.Imaging;

namespace Histo.Cli.Commands;

/// <summary><c>histo stain</c>: images normalised to a target's staining, each beside its source and the target, to look at
/// what <c>histo embed --stain-norm</c> will do.</summary>
static class StainCommand
{
    public static Command Create()
    {
        var images = new Argument<FileInfo[]>("images") { Description = "Images (PNG, JPEG, TIFF) to normalise.",
            Arity = ArgumentArity.OneOrMore };
        var method = new Option<string>("--method") { Description = "macenko or reinhard.", DefaultValueFactory = _ => "macenko" };
        var target = new Option<FileInfo>("--target") { Description = "The image whose staining to match.", Required = true };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Folder for <name>.png (normalised) and "
            + "<name>.before-after.png (source | target | normalised).", Required = true };
        var command = new Command("stain", "Normalise images to a target's H&E staining (torchstain's Macenko or Reinhard) and "
            + "write before/after pictures.") { images, method, target, output };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var chosen = parse.GetValue(method) switch
            {
                "macenko" => StainMethod.Macenko,
                "reinhard" => StainMethod.Reinhard,
                var m => throw new UsageException($"--method '{m}' must be macenko or reinhard"),
            };
            string targetPath = parse.GetValue(target)!.FullName, outDir = parse.GetValue(output)!.FullName;
            using var normaliser = StainNormaliser.Fit(chosen, targetPath, "--target");
            var targetImage = RgbaImage.Load(targetPath);
            var sources = parse.GetValue(images)!.Select(f => (f.FullName, Image: RgbaImage.Load(f.FullName))).ToList();
            Directory.CreateDirectory(outDir);
            foreach (var (path, image) in sources)
            {
                string name = Path.GetFileNameWithoutExtension(path);
                normaliser.Normalise(image).Save(Path.Combine(outDir, name + ".png"));
                normaliser.BeforeAfter(image, targetImage).Save(Path.Combine(outDir, name + ".before-after.png"));
                Console.WriteLine($"{path} -> {Path.Combine(outDir, name + ".png")} (and .before-after.png)");
            }
            return 0;
        }));
        return command;
    }
}
