using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Reproduces a TorchSharp 0.107 race (not a speed benchmark): <c>a + b</c> calls <c>add(b, 1)</c>, whose implicit
/// <c>Scalar</c> is unreachable once its handle is read, so a garbage collection triggered by another thread during the
/// native call can finalize (free) it while libtorch still reads it: "Expected false to be true ... toFloat", or a native
/// crash. Here one thread adds in a loop while another forces collections; with --guarded the loop passes a Scalar it
/// keeps alive and runs clean. Real runs hit it rarely (an evaluation thread, a progress-bar thread, parallel test classes).
/// With --encoder NAME the loop is <c>histo embed</c>'s instead: the encoder's forward pass (normalisation, residual
/// additions, position embeddings) on a batch of patches while the other thread allocates as a patch reader does.
/// </summary>
static class GcRace
{
    public static int Run(BenchArgs args)
    {
        if (args.String("--encoder") is { } encoder) return Encoder(encoder, args.Number("--seconds", 30));
        if (args.String("--chained") is not null)
            return Chained(args.Number("--seconds", 30), args.String("--scoped") is not null);
        bool guarded = args.String("--guarded") is not null;
        using var a = randn(64, 65, 192);
        using var b = randn(1, 65, 192);
        using TorchSharp.Scalar one = 1;
        using var collector = new Collector();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long n = 0;
        while (clock.Elapsed.TotalSeconds < args.Number("--seconds", 30))
        {
            using var scope = args.String("--scoped") is not null ? NewDisposeScope() : null;
            using var c = guarded ? a.add(b, one) : a + b;
            n++;
        }
        Console.WriteLine($"{(guarded ? "guarded" : "plain")}: {n} additions under forced collections, no crash");
        return 0;
    }

    /// <summary>
    /// The other half of the race: in <c>x.sum(1, keepdim: true).expand(-1, 3, -1)</c> the sum's result is referenced only as
    /// <c>this</c> of expand, so once expand has read its handle the wrapper is unreachable, and a collection on another thread
    /// can finalize (free) the native tensor while expand still reads its sizes. With --scoped the loop runs inside a
    /// dispose scope, which holds every temporary until the scope ends.
    /// </summary>
    static int Chained(double seconds, bool scoped)
    {
        using var a = randn(8, 3, 32, 32);
        using TorchSharp.Scalar half = 0.5;
        using var collector = new Collector();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long n = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            using var scope = scoped ? NewDisposeScope() : null;
            var c = a.mul(half).sum(1, keepdim: true).expand(-1, 3, -1, -1).contiguous();
            if (c.shape[1] != 3 || c.shape[3] != 32)
                throw new InvalidOperationException($"garbage shape [{string.Join(", ", c.shape)}]");
            if (!scoped) c.Dispose();
            n++;
        }
        Console.WriteLine($"chained{(scoped ? ", scoped" : "")}: {n} chained calls under forced collections, no crash");
        return 0;
    }

    /// <summary>Forward passes of an encoder (64 px patches, batch 8) while another thread allocates and forces collections.</summary>
    static int Encoder(string name, double seconds)
    {
        using var encoder = Histo.Models.EncoderRegistry.Create(name, inputSize: 64);
        var pixels = new byte[8 * 64 * 64 * 4];
        new Random(0).NextBytes(pixels);
        using var batch = tensor(pixels, [8, 64, 64, 4]);
        bool stop = false;
        long garbage = 0;
        var reader = new Thread(() =>
        {
            // A patch reader's allocations (decoded tiles), with a collection forced after each.
            while (!Volatile.Read(ref stop)) { garbage += new byte[256 * 256 * 4].Length; GC.Collect(); GC.WaitForPendingFinalizers(); }
        }) { IsBackground = true };
        reader.Start();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long n = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            using var features = encoder.Embed(batch);
            n++;
        }
        Volatile.Write(ref stop, true);
        Console.WriteLine($"{name}: {n} forward passes of 8 patches under forced collections in {clock.Elapsed.TotalSeconds:0} s, no "
            + $"crash");
        return 0;
    }

    /// <summary>A background thread forcing collections (and finalizers) back to back until disposed.</summary>
    sealed class Collector : IDisposable
    {
        volatile bool _stop;

        public Collector() =>
            new Thread(() => { while (!_stop) { GC.Collect(); GC.WaitForPendingFinalizers(); } }) { IsBackground = true }.Start();

        public void Dispose() => _stop = true;
    }
}
