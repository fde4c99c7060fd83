using System.CommandLine;
using Histo.Imaging;
using Histo.SelfSupervised;

namespace Histo.Cli.Commands;

static class AugmentCommand
{
    public static Command Create()
    {
        var image = new Argument<FileInfo>("image") { Description = "A patch image (PNG, JPEG, TIFF)." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Grid PNG to write.", Required = true };
        var seed = new Option<int>("--seed") { Description = "Seed of the augmentations.", DefaultValueFactory = _ => 0 };
        var rows = new Option<int>("--rows") { Description = "Sets of views (rows).", DefaultValueFactory = _ => 3 };
        var local = new Option<int>("--local-crops") { Description = "Local crops per set.", DefaultValueFactory = _ => new DinoAugmentation().LocalCrops };
        var command = new Command("augment", "Write a grid of DINO's multi-crop views of a patch (2 global, N local per row), to look at the augmentations.") { image, output, seed, rows, local };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var source = RgbaImage.Load(parse.GetValue(image)!.FullName);
            var grid = new DinoAugmentation { LocalCrops = parse.GetValue(local) }.Grid(source, parse.GetValue(seed), parse.GetValue(rows));
            grid.Save(parse.GetValue(output)!.FullName);
            Console.WriteLine($"{grid.Width}x{grid.Height} grid -> {parse.GetValue(output)!.FullName}");
            return 0;
        }));
        return command;
    }
}
