using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Histo.Evaluation;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>kNN queries per second, Histo versus scikit-learn's brute-force cosine KNeighborsClassifier on the same features (k = 20, majority vote).</summary>
static class KnnBenchmark
{
    public static int Run(bool quick)
    {
        Directory.CreateDirectory(BenchEnvironment.WorkDir);
        BenchEnvironment.EnsureDebianPackages("python3-sklearn", "python3-numpy");
        int n = quick ? 5000 : 20000, q = quick ? 1000 : 5000, d = 512;
        set_num_threads(Environment.ProcessorCount);
        manual_seed(0);
        using var train = randn(n, d);
        using var test = randn(q, d);
        var labels = Enumerable.Range(0, n).Select(i => (long)(i % 10)).ToArray();
        string dir = BenchEnvironment.WorkDir;
        Npy.WriteFloat32(Path.Combine(dir, "knn-train.npy"), train.data<float>().ToArray(), [n, d]);
        Npy.WriteInt64(Path.Combine(dir, "knn-labels.npy"), labels, [n]);
        Npy.WriteFloat32(Path.Combine(dir, "knn-test.npy"), test.data<float>().ToArray(), [q, d]);

        float[,] Matrix(Tensor t) { var m = new float[t.shape[0], t.shape[1]]; Buffer.BlockCopy(t.data<float>().ToArray(), 0, m, 0, m.Length * 4); return m; }
        var trainM = Matrix(train); var testM = Matrix(test);
        using var knn = new KnnClassifier(trainM, labels.Select(l => (int)l).ToArray());
        knn.Predict(testM, 20, KnnVote.Majority);
        var clock = Stopwatch.StartNew();
        var ours = knn.Predict(testM, 20, KnnVote.Majority);
        double histo = q / clock.Elapsed.TotalSeconds;

        var py = BenchEnvironment.Run("/usr/bin/python3", [Path.Combine(BenchEnvironment.RepoRoot, "tools", "reference", "knn_speed_reference.py"),
            Path.Combine(dir, "knn-train.npy"), Path.Combine(dir, "knn-labels.npy"), Path.Combine(dir, "knn-test.npy")]);
        if (py.Code != 0) throw new InvalidOperationException("scikit-learn reference failed: " + py.Stderr);
        var result = JsonDocument.Parse(py.Stdout.Trim().Split('\n')[^1]).RootElement;
        double sklearn = result.GetProperty("queries_per_second").GetDouble();
        var theirs = result.GetProperty("predictions").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        double agree = ours.Zip(theirs).Count(p => p.First == p.Second) / (double)q;
        Console.WriteLine($"kNN, {n} training x {d}-d features, {q} queries, k=20, cosine, majority vote:");
        Console.WriteLine($"  scikit-learn (Debian, brute force)  {sklearn,10:0} queries/s");
        Console.WriteLine($"  Histo (TorchSharp)                  {histo,10:0} queries/s   ratio {histo / sklearn:0.00}x; identical predictions {agree:P1}");
        return 0;
    }

    /// <summary>
    /// Memory of kNN queries at 1M x 512 training features: the added peak resident memory of Histo's chunked, running top-k
    /// query versus the one [1024, N] similarity block per query chunk that the classifier used to build, in one run.
    /// Peaks are the kernel's VmHWM, reset before each measurement through /proc/self/clear_refs.
    /// </summary>
    public static int Memory(bool quick)
    {
        int n = quick ? 200_000 : 1_000_000, q = 2048, d = 512, k = 20;
        set_num_threads(Environment.ProcessorCount);
        manual_seed(0);
        var labels = Enumerable.Range(0, n).Select(i => i % 10).ToArray();
        float[,] trainM = new float[n, d], testM = new float[q, d];
        using (var t = randn(n, d)) t.data<float>().CopyTo(MemoryMarshal.CreateSpan(ref trainM[0, 0], trainM.Length));
        using (var t = randn(q, d)) t.data<float>().CopyTo(MemoryMarshal.CreateSpan(ref testM[0, 0], testM.Length));
        using var knn = new KnnClassifier(trainM, labels);

        double before = ResetPeak();
        var clock = Stopwatch.StartNew();
        var ours = knn.Predict(testM, k, KnnVote.Majority);
        double chunkedSeconds = clock.Elapsed.TotalSeconds, chunkedPeak = PeakMiB() - before;

        // The former query: one similarity over every training row per chunk of 1,024 queries, top k of it.
        // Its normalised training copy is made before the measurement: both classifiers hold one from construction on.
        int[] whole = new int[q];
        using var train = nn.functional.normalize(tensor(trainM), 2, 1);
        before = ResetPeak();
        clock.Restart();
        using (var y = tensor(labels.Select(l => (long)l).ToArray()))
        using (var allQueries = tensor(testM))
            for (int start = 0; start < q; start += 1024)
            {
                using var scope = NewDisposeScope();
                var queries = nn.functional.normalize(allQueries.narrow(0, start, 1024), 2, 1);
                var (_, indices) = queries.matmul(train.T).topk(k, dim: 1);
                var votes = zeros(1024, 10).scatter_add_(1, y.index_select(0, indices.flatten()).reshape(1024, k), ones(1024, k));
                var predicted = votes.argmax(1).data<long>().ToArray();
                for (int i = 0; i < 1024; i++) whole[start + i] = (int)predicted[i];
            }
        double wholeSeconds = clock.Elapsed.TotalSeconds, wholePeak = PeakMiB() - before;
        double agree = ours.Zip(whole).Count(p => p.First == p.Second) / (double)q;
        long trainMiB = n * (long)d * 4 / (1 << 20);
        Console.WriteLine($"kNN queries against {n:N0} training x {d}-d features ({trainMiB:N0} MiB), {q} queries, k={k}:");
        Console.WriteLine($"  one [1024, N] similarity per query chunk (before)  +{wholePeak,8:N0} MiB peak  {wholeSeconds,6:0.0} s");
        Console.WriteLine($"  running top-k over 32,768-row blocks (Histo)       +{chunkedPeak,8:N0} MiB peak  {chunkedSeconds,6:0.0} s"
            + $"   ratio {chunkedPeak / wholePeak:0.000}; identical predictions {agree:P1}");
        return 0;
    }

    /// <summary>Resets the process's peak resident set to its current size; returns that size in MiB.</summary>
    static double ResetPeak()
    {
        GC.Collect();
        File.WriteAllText("/proc/self/clear_refs", "5");
        return Status("VmRSS");
    }

    static double PeakMiB() => Status("VmHWM");

    static double Status(string field) => double.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":"))
        .Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
}
