using Histo.Bench;

// Benchmarks run the same work with Histo and with the reference in one run and print the ratio.
// Usage: dotnet run -c Release --project bench/Histo.Bench -- tiling [--quick]
string mode = args.FirstOrDefault() ?? "tiling";
bool quick = args.Contains("--quick");
return mode switch
{
    "tiling" => TilingBenchmark.Run(quick),
    "nuclei" => NucleiBenchmark.Run(quick),
    "tissue-ink" => TissueInkBenchmark.Run(new BenchArgs(args)),
    "profile-tiling" => ProfileTiling.Run(args[1]),
    "embedding" => EmbeddingBenchmark.Run(quick),
    "encoders" => EncodersBenchmark.Run(quick),
    "profile-encoder" => ProfileEncoder.Run(),
    "features-knn" => FeatureKnnBenchmark.Run(quick),
    "mil" => MilBenchmark.Run(quick),
    "knn" => KnnBenchmark.Run(quick),
    "knn-memory" => KnnBenchmark.Memory(quick),
    "dino-cohort" => DinoCohort.Run(new BenchArgs(args)),
    "dino-step" => DinoStepBenchmark.Run(quick),
    "dino-fmnist" => DinoFashionMnist.Run(new BenchArgs(args)),
    "dino-pcam" => DinoPcam.Run(new BenchArgs(args)),
    "distill" => DistillPcam.Run(new BenchArgs(args)),
    "serve" => ServeBenchmark.Run(new BenchArgs(args)),
    "shards" => ShardBenchmark.Run(new BenchArgs(args)),
    "clip-synth" => ClipSynthBenchmark.Run(new BenchArgs(args)),
    "clip-speed" => ClipSpeedBenchmark.Run(quick),
    "torchsharp-gc-race" => GcRace.Run(new BenchArgs(args)),
    "mil-bag-step" => MilBenchmark.BagStep(args),
    "transmil-step" => MilBenchmark.TransMilStep(args),
    "transmil-memory" => MilBenchmark.TransMilMemory(),
    "mil-cohort-memory" => MilCohortBenchmark.Run(new BenchArgs(args)),
    "mil-cohort-train" => MilCohortBenchmark.Train(args),
    "mil-balance" => MilTrustBenchmark.Balance(new BenchArgs(args)),
    "mil-ood" => MilTrustBenchmark.OutOfDistribution(new BenchArgs(args)),
    "mil-distill" => MilTrustBenchmark.Distill(new BenchArgs(args)),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Histo.Bench "
        + "tiling|serve|shards|nuclei|tissue-ink|embedding|encoders|features-knn|mil|transmil-memory|mil-cohort-memory|mil-balance|"
        + "mil-ood|mil-distill|"
        + "knn|knn-memory|"
        + "dino-step|dino-fmnist|dino-pcam|distill|dino-cohort|clip-synth|clip-speed|torchsharp-gc-race "
            + "[--quick]");
    return 2;
}
