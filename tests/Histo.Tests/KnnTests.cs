using System.Text.Json;
using Histo.Evaluation;

namespace Histo.Tests;

/// <summary>Cosine kNN against scikit-learn (tools/reference/knn_reference.py) and DINO's weighted vote by hand.</summary>
public class KnnTests
{
    static float[,] Matrix(JsonElement rows)
    {
        var list = rows.EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToList();
        var m = new float[list.Count, list[0].Length];
        for (int i = 0; i < list.Count; i++) for (int j = 0; j < list[i].Length; j++) m[i, j] = list[i][j];
        return m;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(20)]
    public void MajorityVoteMatchesScikitLearn(int k)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", "knn-golden.json")));
        var root = doc.RootElement;
        using var knn = new KnnClassifier(Matrix(root.GetProperty("train")), root.GetProperty("train_labels").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        var ours = knn.Predict(Matrix(root.GetProperty("test")), k, KnnVote.Majority);
        var sklearn = root.GetProperty("predictions").GetProperty(k.ToString()).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(sklearn, ours);
    }

    [Fact]
    public void WeightedVoteUsesExpSimilarityOverTemperature()
    {
        // Query along x. Neighbours: two of class 0 at 60 degrees (cos 0.5), one of class 1 at 0 degrees (cos 1).
        var train = new float[,] { { 0.5f, 0.866f }, { 0.5f, -0.866f }, { 1f, 0f } };
        using var knn = new KnnClassifier(train, [0, 0, 1]);
        var query = new float[,] { { 1f, 0f } };
        Assert.Equal(0, knn.Predict(query, 3, KnnVote.Majority)[0]);              // 2 votes against 1
        Assert.Equal(1, knn.Predict(query, 3, KnnVote.Weighted, 0.07)[0]);       // e^(1/0.07) > 2 e^(0.5/0.07)
        Assert.Equal(0, knn.Predict(query, 3, KnnVote.Weighted, 10)[0]);         // hot temperature: nearly a count
    }

    [Fact]
    public void ProbesAgreeWithScikitLearn()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", "knn-golden.json")));
        var root = doc.RootElement;
        var train = Matrix(root.GetProperty("train"));
        var test = Matrix(root.GetProperty("test"));
        var labels = root.GetProperty("train_labels").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] Golden(string name) => root.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        // Gaussian naive Bayes is closed form: identical predictions.
        Assert.Equal(Golden("gaussian_nb"), Probes.GaussianNaiveBayes(train, labels, test, 4));
        // Logistic regression: the same penalised objective, another optimiser: nearly all predictions agree.
        var logistic = Probes.LogisticRegression(train, labels, test, 4);
        double agreement = logistic.Zip(Golden("logistic")).Count(p => p.First == p.Second) / (double)logistic.Length;
        Assert.True(agreement >= 0.95, $"agreement {agreement:F3}");
        // k-means: a local optimum from other seeds; purity within a few points of scikit-learn's.
        double purity = Probes.ClusterPurity(Probes.KMeans(train, 4, seed: 0), labels);
        Assert.InRange(purity, root.GetProperty("kmeans_purity").GetDouble() - 0.05, 1.0);
    }
}
