using System.Diagnostics;

namespace Histo.Tests;

/// <summary>Runs the built `histo` program as a user would.</summary>
public static class Cli
{
    public static string Executable => Path.Combine(AppContext.BaseDirectory, "Histo.Cli");

    public static (int Code, string Stdout, string Stderr) Run(params string[] args) => Run(null, args);

    /// <summary>As <see cref="Run(string[])"/>, with extra environment variables (e.g. a scheduler's) for the program only.</summary>
    public static (int Code, string Stdout, string Stderr) Run(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) psi.Environment[name] = value;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr);
    }
}
