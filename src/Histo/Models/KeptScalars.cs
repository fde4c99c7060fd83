using TorchSharp;

namespace Histo.Models;

/// <summary>
/// Numbers that meet tensors in forward passes, as Scalars held for the life of the program. TorchSharp 0.107 turns
/// a C# number into a temporary Scalar on the fly (<c>a + b</c> is <c>a.add(b, 1)</c>), which another thread's garbage
/// collection can free while libtorch still reads it (README, Platform notes); a static Scalar is never collected.
/// </summary>
public static class KeptScalars
{
    /// <summary>The alpha of a plain addition or subtraction: <c>a.add(b, One)</c> is <c>a + b</c>.</summary>
    public static readonly Scalar One = 1.ToScalar();
    public static readonly Scalar Zero = 0.ToScalar();
    /// <summary>The largest byte value, 255, for clamping resampled pixels.</summary>
    public static readonly Scalar ByteMax = 255.ToScalar();

    static readonly System.Collections.Concurrent.ConcurrentDictionary<double, Scalar> Doubles = new();
    static readonly System.Collections.Concurrent.ConcurrentDictionary<long, Scalar> Integers = new();

    /// <summary>A kept Scalar for a constant of the code (a literal, a paper's default). Only for constants: every value is
    /// kept for the life of the program, so per-step numbers (a learning rate, a random factor) take a <c>using</c> Scalar.</summary>
    public static Scalar Of(double constant) => Doubles.GetOrAdd(constant, c => c.ToScalar());

    /// <summary>A kept integer Scalar for a constant of the code (an index, a count).</summary>
    public static Scalar Of(long constant) => Integers.GetOrAdd(constant, c => c.ToScalar());
}
