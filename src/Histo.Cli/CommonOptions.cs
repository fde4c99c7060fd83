using System.CommandLine;

namespace Histo.Cli;

/// <summary>Options several batch commands take, described once.</summary>
static class CommonOptions
{
    /// <summary><c>--shard</c>, parsed by <see cref="Histo.Slides.SlideBatch.ParseShard(string)"/>.</summary>
    public static Option<string?> Shard() => new("--shard")
    {
        Description = "Process shard i of n (0-based, 'i/n'), for array jobs; 'auto' in a Slurm array task, 'auto/n' in a "
            + "Kubernetes Indexed Job of n.",
    };
}
