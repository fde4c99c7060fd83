using System.Diagnostics;
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
}
