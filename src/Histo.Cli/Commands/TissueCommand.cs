using System.CommandLine;
namespace Histo.Cli.Commands;
static class TissueCommand { public static Command Create() => new Command("tissue"); }
