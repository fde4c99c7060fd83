using System.CommandLine;
namespace Histo.Cli.Commands;
static class TileCommand { public static Command Create() => new Command("tile"); }
