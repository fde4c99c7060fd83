using System.CommandLine;
using Histo;

namespace Histo.Cli;

/// <summary>
/// Runs the parsed command with exit codes users can script against: 0 success; 1 a processing failure (bad data, a
/// slide that failed, a NaN loss, an unexpected error); 2 a usage error (a parse error or a <see cref="UsageException"/>).
/// Errors print one line, never a stack trace: an unexpected exception's trace goes to a log file named on that line
/// (or to stderr with --verbose).
/// </summary>
static class CliRunner
{
    public const string VerboseOption = "--verbose";

    public static int Invoke(RootCommand root, string[] args)
    {
        bool verbose = args.Contains(VerboseOption);
        root.Options.Add(new Option<bool>(VerboseOption) { Description = "Print the stack trace of an unexpected error.",
            Recursive = true });
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors) Console.Error.WriteLine($"error: {error.Message}");
            string name = parse.CommandResult.Command is RootCommand ? "histo" : $"histo {parse.CommandResult.Command.Name}";
            Console.Error.WriteLine($"Run '{name} --help' for the options.");
            return 2;
        }
        try
        {
            return parse.Invoke();
        }
        catch (Exception e)
        {
            return Report(e, verbose, args);
        }
    }

    /// <summary>Wraps a command body so any exception becomes one line and the right exit code.</summary>
    public static Func<ParseResult, int> Guard(Func<ParseResult, int> body) => parse =>
    {
        try { return body(parse); }
        catch (Exception e) { return Report(e, parse.GetValue<bool>(VerboseOption), parse.Tokens.Select(t => t.Value).ToArray()); }
    };

    static int Report(Exception e, bool verbose, string[] args)
    {
        switch (e)
        {
            case UsageException:
                Console.Error.WriteLine($"error: {e.Message}");
                return 2;
            case HistoException:
                Console.Error.WriteLine($"error: {e.Message}");
                if (verbose && e.InnerException is not null) Console.Error.WriteLine(e.InnerException);
                return 1;
            case IOException io:
                // Disk full, read-only, a file vanished: the user's environment, not a bug. .NET's message names the path.
                Console.Error.WriteLine($"error: {io.Message}");
                if (verbose) Console.Error.WriteLine(e);
                return 1;
            default:
                if (verbose)
                {
                    Console.Error.WriteLine($"error: unexpected {e.GetType().Name}: {e.Message}");
                    Console.Error.WriteLine(e);
                    return 1;
                }
                Console.Error.WriteLine($"error: unexpected {e.GetType().Name}: {e.Message}; {WriteLog(e, args)}");
                return 1;
        }
    }

    /// <summary>Writes the stack trace to a log file and says where; the trace is for a bug report, not for the terminal.</summary>
    static string WriteLog(Exception e, string[] args)
    {
        try
        {
            string dir = Path.Combine(Path.GetTempPath(), "histo-logs");
            Directory.CreateDirectory(dir);
            string path = Path.Combine(dir, $"histo-{DateTime.Now:yyyyMMdd-HHmmss}-{Environment.ProcessId}.log");
            File.WriteAllText(path, $"histo {string.Join(' ', args)}\n{DateTime.Now:O}\n\n{e}\n");
            return $"the stack trace is in {path} (or rerun with --verbose); please report it";
        }
        catch (Exception)
        {
            return "rerun with --verbose for the stack trace";
        }
    }
}
