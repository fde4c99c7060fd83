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
}
