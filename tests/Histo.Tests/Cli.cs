using System.Diagnostics;

namespace Histo.Tests;

/// <summary>Runs the built `histo` program as a user would.</summary>
public static class Cli
{
    public static string Executable => Path.Combine(AppContext.BaseDirectory, "Histo.Cli");

    public static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var psi = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr);
    }
}
