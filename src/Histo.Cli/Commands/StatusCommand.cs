using System.CommandLine;
using Histo.Pipeline;

namespace Histo.Cli.Commands;

static class StatusCommand
{
    public static Command Create()
    {
        var dir = new Argument<DirectoryInfo>("dir") { Description = "An output folder of histo tile, embed, nuclei or train." };
        var command = new Command("status",
            "The merged state of an output folder written by one run or by array tasks: exit code 0 only when all is done.") { dir };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var report = JobStatus.Of(parse.GetValue(dir)!.FullName);
            foreach (var line in report.Lines) Console.WriteLine(line);
            return report.AllDone ? 0 : 1;
        }));
        return command;
    }
}
