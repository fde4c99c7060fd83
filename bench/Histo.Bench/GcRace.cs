using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Reproduces a TorchSharp 0.107 race (not a speed benchmark): <c>a + b</c> calls <c>add(b, 1)</c>, whose implicit
/// <c>Scalar</c> is unreachable once its handle is read, so a garbage collection triggered by another thread during the
/// native call can finalize (free) it while libtorch still reads it: "Expected false to be true ... toFloat", or a native
/// crash. Here one thread adds in a loop while another forces collections; with --guarded the loop passes a Scalar it
/// keeps alive and runs clean. Real runs hit it rarely (an evaluation thread, a progress-bar thread, parallel test classes).
/// </summary>
static class GcRace
{
    public static int Run(BenchArgs args)
    {
        bool guarded = args.String("--guarded") is not null;
        using var a = randn(64, 65, 192);
        using var b = randn(1, 65, 192);
        using TorchSharp.Scalar one = 1;
        bool stop = false;
        var collector = new Thread(() => { while (!Volatile.Read(ref stop)) { GC.Collect(); GC.WaitForPendingFinalizers(); } }) { IsBackground = true };
        collector.Start();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long n = 0;
        while (clock.Elapsed.TotalSeconds < args.Number("--seconds", 30))
        {
            using var c = guarded ? a.add(b, one) : a + b;
            n++;
        }
        Volatile.Write(ref stop, true);
        Console.WriteLine($"{(guarded ? "guarded" : "plain")}: {n} additions under forced collections, no crash");
        return 0;
    }
}
