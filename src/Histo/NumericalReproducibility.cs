using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Histo;

/// <summary>
/// Makes libtorch's CPU maths give the same bits in every run. libtorch links Intel MKL, whose GEMM takes code paths that
/// depend on the memory alignment of its inputs, so two runs with one seed differed in the last bit of some weights
/// (4 repeats of one `histo train`: 3 different sets of fold weights). MKL's conditional numerical reproducibility
/// (MKL_CBWR=AUTO,STRICT: the best path for this CPU, alignment-independent) removes that (6 repeats: identical).
/// MKL reads the variable from the C environment when it first runs, so it is set with libc's setenv as Histo loads,
/// before any tensor maths. A value the user set is kept.
/// </summary>
static class NumericalReproducibility
{
    public const string Variable = "MKL_CBWR", Value = "AUTO,STRICT";

    [ModuleInitializer]
    internal static void Initialise()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(Variable) is not null) return;
        setenv(Variable, Value, 0);
        Environment.SetEnvironmentVariable(Variable, Value); // .NET's own copy, for child processes and Environment readers
    }

    [DllImport("libc", CharSet = CharSet.Ansi)]
    static extern int setenv(string name, string value, int overwrite);
}
