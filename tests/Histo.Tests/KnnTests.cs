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

/// <summary>ROC AUC of kNN and probe scores against scikit-learn, kNN's chunked top k, and the AUC `histo knn` prints.</summary>
public class KnnAucTests
{
    static JsonElement Golden(JsonDocument doc) => doc.RootElement;
    static JsonDocument Load() => JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
        "knn-golden.json")));

    static float[,] Matrix(JsonElement rows, Func<int, bool>? keep = null)
    {
        var list = rows.EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray())
            .Where((_, i) => keep?.Invoke(i) ?? true).ToList();
        var m = new float[list.Count, list[0].Length];
        for (int i = 0; i < list.Count; i++) for (int j = 0; j < list[i].Length; j++) m[i, j] = list[i][j];
        return m;
    }

    static int[] Ints(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();

    [Fact]
    public void AucOfKnnAndProbeScoresMatchesScikitLearn()
    {
        using var doc = Load();
        var root = Golden(doc);
        var auc = root.GetProperty("auc");
        var train = Matrix(root.GetProperty("train"));
        var test = Matrix(root.GetProperty("test"));
        int[] trainY = Ints(root.GetProperty("train_labels")), testY = Ints(root.GetProperty("test_labels"));
        using (var knn = new KnnClassifier(train, trainY))
            Assert.Equal(auc.GetProperty("knn5").GetDouble(), SlideMetrics.MacroAuc(knn.Scores(test, 5, KnnVote.Majority), testY, 4), 9);
        Assert.Equal(auc.GetProperty("gaussian_nb").GetDouble(),
            SlideMetrics.MacroAuc(Probes.GaussianNaiveBayesProbabilities(train, trainY, test, 4), testY, 4), 6);
        // Logistic regression: the same objective, another optimiser; its probabilities rank the test rows almost alike.
        Assert.Equal(auc.GetProperty("logistic").GetDouble(),
            SlideMetrics.MacroAuc(Probes.LogisticRegressionProbabilities(train, trainY, test, 4), testY, 4), 2);

        // Binary: classes 0 and 1 alone, the score of class 1.
        var trainB = Matrix(root.GetProperty("train"), i => trainY[i] < 2);
        var testB = Matrix(root.GetProperty("test"), i => testY[i] < 2);
        int[] trainYB = trainY.Where(y => y < 2).ToArray(), testYB = testY.Where(y => y < 2).ToArray();
        using (var knn = new KnnClassifier(trainB, trainYB))
            Assert.Equal(auc.GetProperty("knn5_binary").GetDouble(),
                SlideMetrics.MacroAuc(knn.Scores(testB, 5, KnnVote.Majority), testYB, 2), 9);
        Assert.Equal(auc.GetProperty("logistic_binary").GetDouble(),
            SlideMetrics.MacroAuc(Probes.LogisticRegressionProbabilities(trainB, trainYB, testB, 2), testYB, 2), 2);
    }

    [Fact]
    public void NeighboursInDifferentTrainingChunksAreAllFound()
    {
        // 70,000 training rows (three 32,768-row similarity blocks): the three rows nearest the query sit one in each block,
        // every other row points away from it. A top k kept per block only, or from the last block, gets the labels wrong.
        int n = 70_000;
        var train = new float[n, 2];
        var labels = new int[n];
        for (int i = 0; i < n; i++) { train[i, 0] = -1; train[i, 1] = 0.001f * (i % 100); labels[i] = 0; }
        foreach (var (row, angle) in new[] { (5, 0.10), (40_000, 0.05), (69_999, 0.15) })
        {
            train[row, 0] = (float)Math.Cos(angle); train[row, 1] = (float)Math.Sin(angle); labels[row] = 1;
        }
        using var knn = new KnnClassifier(train, labels);
        var scores = knn.Scores(new float[,] { { 1, 0 } }, 3, KnnVote.Majority);
        Assert.Equal([0.0, 1.0], scores[0]);                                  // all three neighbours are class 1
        var four = knn.Scores(new float[,] { { 1, 0 } }, 4, KnnVote.Majority);
        Assert.Equal([0.25, 0.75], four[0]);                                  // the fourth is one of the others
    }

    [Fact]
    public void KnnCommandPrintsAccuracyAndAucOfAHandWorkedCase()
    {
        // Unit vectors at angles (degrees). Training: class a at 70, 80, 90; class b at 0, 10, 20. k = 3, majority vote: the share
        // of b among the three nearest is 1 at 5 deg, 2/3 at 42 (20 b, 70 a, 10 b), 1/3 at 48 (70 a, 20 b, 80 a), 0 at 85.
        // Test slide tb (label b) holds 5 and 48, slide ta (label a) 42 and 85: b scores {1, 1/3}, a scores {2/3, 0}, so
        // AUC = 3 of 4 pairs = 0.75; the argmax is right at 5 and 85 only: accuracy 0.5.
        using var dir = new TempDir();
        static float[,] Rows(params double[] degrees)
        {
            var m = new float[degrees.Length, 2];
            for (int i = 0; i < degrees.Length; i++)
            {
                m[i, 0] = (float)Math.Cos(degrees[i] * Math.PI / 180);
                m[i, 1] = (float)Math.Sin(degrees[i] * Math.PI / 180);
            }
            return m;
        }
        void Write(string folder, string slide, float[,] f) =>
            new Histo.IO.PatchFeatures(slide, f, new long[f.GetLength(0), 2], "toy", 224, 0.5).Write(dir[$"{folder}/{slide}.h5"]);
        Directory.CreateDirectory(dir["train"]); Directory.CreateDirectory(dir["test"]);
        Write("train", "sa", Rows(70, 80, 90));
        Write("train", "sb", Rows(0, 10, 20));
        Write("test", "tb", Rows(5, 48));
        Write("test", "ta", Rows(42, 85));
        File.WriteAllText(dir["labels.csv"], "case_id,slide_id,label\nc1,sa,a\nc2,sb,b\nc3,ta,a\nc4,tb,b\n");
        var r = Cli.Run("knn", "--train", dir["train"], "--test", dir["test"], "--labels", dir["labels.csv"], "--k", "3",
            "--vote", "majority");
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains("accuracy 0.5000", r.Stdout);
        Assert.Contains("AUC (b vs a) 0.7500", r.Stdout);
    }
}
