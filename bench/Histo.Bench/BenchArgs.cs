using System.Globalization;

namespace Histo.Bench;

/// <summary>The benchmark's command line: <c>MODE [--quick] [--name value ...]</c>.</summary>
sealed class BenchArgs(string[] args)
{
    public bool Quick => args.Contains("--quick");

    /// <summary>The value after <paramref name="name"/>, or null when it is not given.</summary>
    public string? String(string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public double Number(string name, double fallback) => String(name) is { } v ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;
}
