using System.CommandLine;
using Histo.Evaluation;
using Histo.Models;

namespace Histo.Cli.Commands;

/// <summary>`histo knn` and `histo probe`: frozen-feature evaluation on a train and a test set.</summary>
static class EvaluateCommands
{
    sealed record InputOptions(Option<string> Train, Option<string> Test, Option<FileInfo?> Labels, Option<FileInfo?> TestLabels,
        Option<string> Encoder)
    {
        public IEnumerable<Option> All => [Train, Test, Labels, TestLabels, Encoder];
    }

    static InputOptions Inputs() => new(
        new Option<string>("--train") { Description = "Training features: an image folder (one subfolder per class) or feature "
            + "files/folder with --labels.", Required = true },
        new Option<string>("--test") { Description = "Test features, as --train.", Required = true },
        new Option<FileInfo?>("--labels") { Description = "CLAM label CSV for feature files (every patch takes its slide's label)." },
        new Option<FileInfo?>("--test-labels") { Description = "Label CSV of the test feature files, when it is not --labels." },
        new Option<string>("--encoder") { Description = "Encoder for image folders (name, checkpoint or pretrain run).",
            DefaultValueFactory = _ => EncoderRegistry.Default });

    static (float[,] Train, int[] TrainY, float[,] Test, int[] TestY, string[] Classes) Load(ParseResult parse, InputOptions o)
    {
        string? labels = parse.GetValue(o.Labels)?.FullName;
        void Warn(string message) => Console.Error.WriteLine($"warning: {message}");
        var train = FeatureSets.Load(parse.GetValue(o.Train)!, labels, parse.GetValue(o.Encoder)!, warn: Warn);
        var test = FeatureSets.Load(parse.GetValue(o.Test)!, parse.GetValue(o.TestLabels)?.FullName ?? labels,
            parse.GetValue(o.Encoder)!, warn: Warn);
        train.CheckComparable(test, parse.GetValue(o.Train)!, parse.GetValue(o.Test)!);
        var classes = train.Labels.Concat(test.Labels).Distinct().Order(StringComparer.Ordinal).ToArray();
        int[] Index(string[] l) => l.Select(x => Array.IndexOf(classes, x)).ToArray();
        return (train.Features, Index(train.Labels), test.Features, Index(test.Labels), classes);
    }

    /// <summary>Accuracy, balanced accuracy, ROC AUC (binary, or macro one-vs-rest over the classes present) and the confusion.</summary>
    static void Report(string name, IReadOnlyList<int> truth, double[][] scores, string[] classes)
    {
        var predicted = Probes.ArgMax(scores);
        var m = ClassificationMetrics.Compute(truth, predicted, classes.Length);
        double auc = SlideMetrics.MacroAuc(scores, truth, classes.Length);
        string aucName = classes.Length == 2 ? $"AUC ({classes[1]} vs {classes[0]})" : "macro one-vs-rest AUC";
        Console.WriteLine($"{name}: accuracy {m.Accuracy:0.0000}, balanced accuracy {m.BalancedAccuracy:0.0000}, {aucName} {auc:0.0000}");
        Console.WriteLine("  confusion (rows: truth, columns: prediction): " + string.Join(" ", classes));
        for (int i = 0; i < classes.Length; i++)
            Console.WriteLine($"  {classes[i],-12} " + string.Join(" ", Enumerable.Range(0, classes.Length).Select(j => m.Confusion[i,
                j].ToString().PadLeft(5))));
    }

    public static Command FewShot()
    {
        var o = Inputs();
        var shots = new Option<string>("--shots") { Description = "Support samples per class, one run per count.",
            DefaultValueFactory = _ => string.Join(',', Histo.Evaluation.FewShot.DefaultShots) };
        var episodes = new Option<int>("--episodes") { Description = "Episodes per shot count.",
            DefaultValueFactory = _ => Histo.Evaluation.FewShot.DefaultEpisodes };
        var normalise = new Option<string>("--normalise") { Description = "Feature normalisation with the support's statistics: "
            + string.Join(", ", FeatureNormalisation.Kinds) + " (SimpleShot's and UNI's centre-l2 by default).",
            DefaultValueFactory = _ => "centre-l2" };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the episodes.", DefaultValueFactory = _ => 0UL };
        var command = new Command("fewshot", "Few-shot classification of frozen features by class prototypes (SimpleShot/ProtoNet, "
            + "as UNI evaluates encoders): k support samples per class, nearest prototype, mean and 95% interval over episodes.")
            { shots, episodes, normalise, seed };
        foreach (var option in o.All) command.Options.Add(option);
        command.SetAction(CliRunner.Guard(parse =>
        {
            string kind = parse.GetValue(normalise)!;
            if (!FeatureNormalisation.Kinds.Contains(kind))
                throw new UsageException($"--normalise '{kind}': choose one of {string.Join(", ", FeatureNormalisation.Kinds)}");
            var k = parse.GetValue(shots)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(v => int.TryParse(v, out int n) && n > 0 ? n
                    : throw new UsageException($"--shots '{v}' is not a positive whole number")).ToList();
            Require.AtLeast("--episodes", parse.GetValue(episodes), 1);
            var (train, trainY, test, testY, classes) = Load(parse, o);
            var results = Histo.Evaluation.FewShot.Evaluate(train, trainY, test, testY, classes.Length, k, parse.GetValue(episodes), kind,
                parse.GetValue(seed));
            Console.WriteLine($"few-shot prototypes ({classes.Length}-way, {kind}, {parse.GetValue(episodes)} episodes; "
                + $"{testY.Length} test samples):");
            foreach (var r in results)
                Console.WriteLine($"  {r.Shots,3}-shot: accuracy {r.Accuracy:0.0000} +/- {r.AccuracyInterval:0.0000}, balanced accuracy "
                    + $"{r.BalancedAccuracy:0.0000} +/- {r.BalancedAccuracyInterval:0.0000}");
            return 0;
        }));
        return command;
    }

    public static Command Knn()
    {
        var o = Inputs();
        var k = new Option<int>("--k") { DefaultValueFactory = _ => KnnClassifier.DefaultK };
        var temperature = new Option<double>("--temperature") { DefaultValueFactory = _ => KnnClassifier.DefaultTemperature };
        var vote = new Option<string>("--vote") { Description = "weighted (DINO) or majority (scikit-learn).",
            DefaultValueFactory = _ => "weighted" };
        var command = new Command("knn", "k-nearest-neighbour accuracy of frozen features (cosine similarity).") { k, temperature, vote };
        foreach (var option in o.All) command.Options.Add(option);
        command.SetAction(CliRunner.Guard(parse =>
        {
            Require.AtLeast("--k", parse.GetValue(k), 1);
            Require.Positive("--temperature", parse.GetValue(temperature));
            var (train, trainY, test, testY, classes) = Load(parse, o);
            var v = parse.GetValue(vote) switch { "weighted" => KnnVote.Weighted, "majority" => KnnVote.Majority,
                var x => throw new UsageException($"--vote '{x}' must be weighted or majority") };
            using var knn = new KnnClassifier(train, trainY);
            Report($"kNN (k={parse.GetValue(k)}, {parse.GetValue(vote)})", testY, knn.Scores(test, parse.GetValue(k), v,
                parse.GetValue(temperature)), classes);
            return 0;
        }));
        return command;
    }

    public static Command Probe()
    {
        var o = Inputs();
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var c = new Option<string>("--c") { Description = "The probe's inverse L2 strength: a number (scikit-learn's default is 1), or "
            + "auto: chosen on a 20% validation split of the training set from 10^-4 .. 10^4 by balanced accuracy, then refitted "
            + "on all of it (UNI's protocol).", DefaultValueFactory = _ => "auto" };
        var command = new Command("probe",
            "Linear probe (logistic regression), Gaussian naive Bayes and k-means purity on frozen features.") { seed, c };
        foreach (var option in o.All) command.Options.Add(option);
        command.SetAction(CliRunner.Guard(parse =>
        {
            string cText = parse.GetValue(c)!;
            double fixedC = 0;
            if (cText != "auto" && !(double.TryParse(cText, System.Globalization.NumberStyles.Float,
                    System.Globalization.CultureInfo.InvariantCulture, out fixedC) && fixedC > 0 && double.IsFinite(fixedC)))
                throw new UsageException($"--c '{cText}' must be auto or a positive number");
            var (train, trainY, test, testY, classes) = Load(parse, o);
            double chosen = fixedC;
            if (cText == "auto")
            {
                (chosen, var scores) = Probes.ChooseC(train, trainY, classes.Length, (ulong)parse.GetValue(seed));
                Console.WriteLine("C by validation balanced accuracy: " + string.Join(", ", Probes.CGrid.Zip(scores, (g, v) =>
                    string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{g:G2} {v:0.000}"))) + $"; chosen C = {chosen:G2}");
            }
            Report($"logistic regression (C = {chosen:G2})", testY, Probes.LogisticRegressionProbabilities(train, trainY, test,
                classes.Length, chosen, iterations: 1000), classes);
            Report("Gaussian naive Bayes", testY, Probes.GaussianNaiveBayesProbabilities(train, trainY, test,
                classes.Length), classes);
            Console.WriteLine($"k-means (k={classes.Length}) purity on the test features: "
                + $"{Probes.ClusterPurity(Probes.KMeans(test, classes.Length, parse.GetValue(seed)), testY):0.0000}");
            return 0;
        }));
        return command;
    }
}
