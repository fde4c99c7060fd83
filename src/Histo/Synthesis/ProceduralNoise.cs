using System.Runtime.CompilerServices;

namespace Histo.Synthesis;

/// <summary>
/// Stateless, seedable hash noise. Every value is a pure function of (seed, coordinates), so any tile of
/// any slide can be rendered on its own, in any order, on any thread: the property that lets synthetic
/// slides of 100,000 px per side stream.
/// </summary>
internal static class ProceduralNoise
{
    /// <summary>A 64-bit mix (SplitMix64 finaliser) of a seed and three integers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Hash(ulong seed, long a, long b = 0, long c = 0) =>
        // One finalising mix of a linear combination: distinct small lattice coordinates never collide,
        // and one mix (not three) keeps per-pixel rendering fast.
        Mix(seed * 0x9E3779B97F4A7C15UL + (ulong)a * 0xBF58476D1CE4E5B9UL + (ulong)b * 0x94D049BB133111EBUL + (ulong)c * 0xD6E8FEB86659FD93UL + 0x632BE59BD9B4E019UL);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) from a hash.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Unit(ulong h) => (h >> 11) * (1.0 / (1UL << 53));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Unit(ulong seed, long a, long b = 0, long c = 0) => Unit(Hash(seed, a, b, c));

    /// <summary>Smooth value noise in [0, 1] with unit lattice spacing (quintic interpolation).</summary>
    public static double Value(ulong seed, double x, double y)
    {
        long ix = (long)Math.Floor(x), iy = (long)Math.Floor(y);
        double fx = x - ix, fy = y - iy;
        double ux = fx * fx * fx * (fx * (fx * 6 - 15) + 10), uy = fy * fy * fy * (fy * (fy * 6 - 15) + 10);
        double v00 = Unit(seed, ix, iy), v10 = Unit(seed, ix + 1, iy), v01 = Unit(seed, ix, iy + 1), v11 = Unit(seed, ix + 1, iy + 1);
        double a = v00 + (v10 - v00) * ux, b = v01 + (v11 - v01) * ux;
        return a + (b - a) * uy;
    }

    /// <summary>Fractal sum of value noise, normalised to [0, 1].</summary>
    public static double Fractal(ulong seed, double x, double y, int octaves)
    {
        double sum = 0, amplitude = 1, norm = 0;
        for (int o = 0; o < octaves; o++)
        {
            sum += amplitude * Value(seed + (ulong)o * 7919, x, y);
            norm += amplitude;
            amplitude *= 0.5; x *= 2.03; y *= 2.03;
        }
        return sum / norm;
    }

    /// <summary>Periodic 1-D value noise over an angle (period 2 pi) with <paramref name="cells"/> lattice cells.</summary>
    public static double Angular(ulong seed, double theta, int cells)
    {
        double t = (theta / (2 * Math.PI) + 1) * cells;
        long i = (long)Math.Floor(t);
        double f = t - i;
        double u = f * f * (3 - 2 * f);
        double a = Unit(seed, ((i % cells) + cells) % cells), b = Unit(seed, (((i + 1) % cells) + cells) % cells);
        return a + (b - a) * u;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double SmoothStep(double edge0, double edge1, double x)
    {
        double t = Math.Clamp((x - edge0) / (edge1 - edge0), 0, 1);
        return t * t * (3 - 2 * t);
    }
}
