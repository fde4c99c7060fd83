using Histo.Bench;

// Benchmarks run the same work with Histo and with the reference in one run and print the ratio.
// Usage: dotnet run -c Release --project bench/Histo.Bench -- tiling [--quick]
string mode = args.FirstOrDefault() ?? "tiling";
bool quick = args.Contains("--quick");
return mode switch
{
    "tiling" => TilingBenchmark.Run(quick),
    "profile-tiling" => ProfileTiling.Run(args[1]),
    "embedding" => EmbeddingBenchmark.Run(quick),
    "profile-encoder" => ProfileEncoder.Run(),
    "features-knn" => FeatureKnnBenchmark.Run(quick),
    "mil" => MilBenchmark.Run(quick),
    "knn" => KnnBenchmark.Run(quick),
    "dino-cohort" => DinoCohort.Run(quick, StringArg),
    "dino-step" => DinoStepBenchmark.Run(quick),
    "dino-fmnist" => DinoFashionMnist.Run(quick, IntArg("--images"), IntArg("--epochs"), StringArg),
    "mil-bag100k" => MilBenchmark.HundredThousandPatchBag(),
    _ => Usage(),
};

string? StringArg(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

int? IntArg(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out int v) ? v : null;
}

static int Usage()
{
    Console.Error.WriteLine("usage: Histo.Bench tiling|embedding|features-knn|mil|knn|dino-step|dino-fmnist|dino-cohort [--quick]");
    return 2;
}
