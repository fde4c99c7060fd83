using System.CommandLine;
using Histo;

namespace Histo.Cli;

/// <summary>Runs the parsed command; user errors become one line on stderr and exit code 2, never a stack trace.</summary>
static class CliRunner
{
    public static int Invoke(RootCommand root, string[] args)
    {
        try
        {
            return root.Parse(args).Invoke();
        }
        catch (HistoException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    /// <summary>Wraps a command body so a <see cref="HistoException"/> prints one line and exits 2.</summary>
    public static Func<ParseResult, int> Guard(Func<ParseResult, int> body) => parse =>
    {
        try { return body(parse); }
        catch (HistoException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    };
}
