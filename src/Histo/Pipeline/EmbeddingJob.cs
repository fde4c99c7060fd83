using System.Collections.Concurrent;
using System.Diagnostics;
using Histo.Imaging;
using Histo.IO;
using Histo.Models;
using Histo.Slides;
using static TorchSharp.torch;

namespace Histo.Pipeline;

/// <summary>Options of <c>histo embed</c>.</summary>
public sealed record EmbeddingJobOptions
{
    public required IReadOnlyList<string> Slides { get; init; }
    /// <summary>The output folder of <c>histo tile</c> (with coords/), or a folder of coordinate files.</summary>
    public required string CoordsDir { get; init; }
    public required string OutputDir { get; init; }
    public string Encoder { get; init; } = EncoderRegistry.Default;
    /// <summary>The weights file of a registered encoder (the foundation models need one: their weights are gated).</summary>
    public string? Weights { get; init; }
    /// <summary>A JSON map of encoder name to weights file (TRIDENT's local_ckpts.json); default: $HISTO_WEIGHTS_CONFIG.</summary>
    public string? WeightsConfigFile { get; init; }
    public int BatchSize { get; init; } = 64;
    /// <summary>Threads for the network (TorchSharp's intra-op threads).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Threads reading and resizing patches, overlapped with the network.</summary>
    public int ReaderThreads { get; init; } = Math.Max(1, Environment.ProcessorCount / 2);
    /// <summary>bfloat16 runs the network in bf16 (fast with AVX-512-BF16/AMX); features are returned as float32. Null: the
    /// row's default where the CPU has bf16 instructions (<see cref="ComputePrecision"/>).</summary>
    public ScalarType? Precision { get; init; }
    public (int Index, int Count)? Shard { get; init; }
    /// <summary>Stain normalisation of every patch onto <see cref="StainTarget"/>'s staining before the encoder; null: none.</summary>
    public StainMethod? StainNorm { get; init; }
    public string? StainTarget { get; init; }
    public bool SkipErrors { get; init; }
    public bool Overwrite { get; init; }

    public void Validate()
    {
        Require.AtLeast("--batch-size", BatchSize, 1);
        Require.AtLeast("--threads", Math.Min(Threads, ReaderThreads), 1);
        if (!Directory.Exists(CoordsDir)) throw new HistoException($"{CoordsDir}: coordinates folder not found; run 'histo tile' "
            + $"first and pass its -o folder");
        if ((StainNorm is null) != (StainTarget is null))
            throw new UsageException("--stain-norm and --stain-target go together: the method and the image whose staining to match");
    }
}

/// <summary>Time spent per stage, for the benchmark's split between reading and encoding.</summary>
public sealed record EmbeddingTimings(double ReadSeconds, double EncodeSeconds, long Patches);

/// <summary>
/// Turns each slide's patches into feature vectors: <c>features/&lt;slide_id&gt;.h5</c> with <c>features</c>
/// (float32 [N, D]) and <c>coords</c> (int64 [N, 2]), CLAM's and TRIDENT's layout. Patches are read on
/// reader threads and queued a few batches ahead, so decoding overlaps the network. Outputs are atomic; a
/// rerun skips done slides; NaN or infinite features fail the slide, naming the patch.
/// </summary>
public static class EmbeddingJob
{
    const int BatchesAhead = 2;

    /// <summary>The embedding settings of an output folder, recorded by its first run.</summary>
    public const string SettingsFile = "embedding.json";

    public static IReadOnlyList<SlideOutcome> Run(EmbeddingJobOptions options, Action<SlideOutcome>? onSlide = null,
        Action<int>? onPatches = null,
        Action<string>? log = null)
    {
        options.Validate();
        var files = SlideBatch.Expand(options.Slides);
        if (options.Shard is { } shard) files = files.Where(f => SlideBatch.InShard(WholeSlide.SlideIdOf(f), shard)).ToList();
        set_num_threads(options.Threads);
        // The encoder first: a missing or unfitting weights file is reported before the output folder is made.
        string? weights = options.Weights ?? WeightsConfig.Resolve(options.Encoder, options.WeightsConfigFile);
        var precision = options.Precision ?? ComputePrecision.Resolve(null, options.Encoder);
        using var stain = options.StainNorm is { } method ? StainNormaliser.Fit(method, options.StainTarget!, "--stain-target") : null;
        using var encoder = EncoderRegistry.Create(options.Encoder, precision, weights: weights);
        using var folder = JobFolder.Open(options.OutputDir, "histo embed", options.Shard);
        foreach (var removed in folder.RemovedTemporaries) log?.Invoke($"removed {removed}, left by a run that was killed");
        // The encoder's weights and the precision change the features; batch size and threads do not. A weights file is
        // recorded by its SHA-256, so the same weights at another path are the same run and other weights are refused.
        string? weightsSha256 = weights is null ? null : Sha256(weights);
        // Stain normalisation changes the features too: its method and target (by content) are part of the settings.
        string? stainLabel = stain is null ? null
            : $"{stain.Method.ToString().ToLowerInvariant()} to {Path.GetFileName(options.StainTarget)} (sha256 {Sha256(options.StainTarget!)[..16]})";
        object settings = (weights, stainLabel) switch
        {
            (null, null) => new { Encoder = EncoderLabel(encoder), Precision = precision.ToString() },
            (null, _) => new { Encoder = EncoderLabel(encoder), Precision = precision.ToString(), StainNorm = stainLabel },
            (_, null) => new { Encoder = EncoderLabel(encoder), WeightsSha256 = weightsSha256, Precision = precision.ToString() },
            _ => new { Encoder = EncoderLabel(encoder), WeightsSha256 = weightsSha256, Precision = precision.ToString(),
                StainNorm = stainLabel },
        };
        folder.RecordOrCheckSettings(SettingsFile, settings, options.Overwrite);
        string featuresDir = Path.Combine(options.OutputDir, "features");
        JobFolder.CreateDirectory(featuresDir);
        return SlideBatch.Run(files, 1, options.SkipErrors, file =>
        {
            string slideId = WholeSlide.SlideIdOf(file);
            var clock = Stopwatch.StartNew();
            try
            {
                string output = Path.Combine(featuresDir, slideId + ".h5");
                if (!options.Overwrite && File.Exists(output))
                {
                    FeatureProvenance? existing = null;
                    try { existing = PatchFeatures.ReadProvenance(output); }
                    catch (HistoException e)
                    {
                        // Histo writes atomically, so a damaged file came from elsewhere (a copy, a full disk): redo it.
                        log?.Invoke($"{output}: damaged or truncated ({e.Message.Split("; ")[0]}); embedding {slideId} again");
                    }
                    if (existing is not null)
                    {
                        if (existing.Encoder == encoder.Spec.Weights || existing.Encoder == encoder.Spec.Name)
                            return new SlideOutcome(slideId, file, SlideStatus.Skipped, (int)existing.Patches, 0, null);
                        throw new HistoException($"{output}: exists with features of '{existing.Encoder}'; pass --overwrite or choose "
                            + $"another -o");
                    }
                }
                var coords = PatchCoordinates.Read(CoordsPath(options.CoordsDir, slideId));
                using var slide = WholeSlide.Open(file);
                var features = EmbedSlide(slide, coords, encoder, options, onPatches, out _, stain);
                new PatchFeatures(slideId, features, coords.Coords, EncoderLabel(encoder), coords.PatchSize, coords.TargetMpp,
                    coords.PatchSizeLevel0, coords.PatchLevel)
                {
                    Overlap = coords.Overlap, MinTissue = coords.MinTissue, WeightsSha256 = weightsSha256,
                    Precision = ComputePrecision.Name(precision), InputSize = encoder.InputSize,
                    Transform = (stainLabel is null ? "" : $"stain normalisation {stainLabel}, ") + encoder.Spec.Preprocessing,
                }.Write(output);
                return new SlideOutcome(slideId, file, SlideStatus.Done, coords.Count, clock.Elapsed.TotalSeconds, null);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return SlideOutcome.Failure(slideId, file, clock.Elapsed.TotalSeconds, e);
            }
        }, onSlide, Path.Combine(options.OutputDir, SlideBatch.ProcessListName(options.Shard)));
    }

    static string EncoderLabel(PatchEncoder encoder) =>
        encoder.Spec.Weights is "none" or "ImageNet (ML.NET)" || encoder.Spec.ModelCard is not null ? encoder.Spec.Name
            : encoder.Spec.Weights;

    static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
    }

    /// <summary>coords/&lt;id&gt;.h5 under a tile output folder, or &lt;id&gt;.h5 directly in the folder.</summary>
    public static string CoordsPath(string coordsDir, string slideId)
    {
        string nested = Path.Combine(coordsDir, "coords", slideId + ".h5");
        return File.Exists(nested) ? nested : Path.Combine(coordsDir, slideId + ".h5");
    }

    /// <summary>Features [N, D] of every patch of a slide.</summary>
    public static float[,] EmbedSlide(WholeSlide slide, PatchCoordinates coords, PatchEncoder encoder, EmbeddingJobOptions options,
        Action<int>? onPatches, out EmbeddingTimings timings, StainNormaliser? stain = null)
    {
        // Rows with a card transform get patches at their tiled size and resize them as the card does; others at the input size.
        int n = coords.Count, size = encoder.Spec.ReadSize(coords.PatchSize), dim = encoder.FeatureDim, batch = options.BatchSize;
        var result = new float[n, dim];
        var queue = new BlockingCollection<(int Start, byte[] Pixels, int Count)>(BatchesAhead);
        double readSeconds = 0;
        var reader = Task.Run(() =>
        {
            try
            {
                for (int start = 0; start < n; start += batch)
                {
                    var clock = Stopwatch.StartNew();
                    int count = Math.Min(batch, n - start);
                    var pixels = new byte[count * size * size * 4];
                    Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = options.ReaderThreads }, k =>
                    {
                        var patch = Tiler.ReadPatch(slide, coords, coords.Coords[start + k, 0], coords.Coords[start + k, 1], size);
                        patch.Pixels.CopyTo(pixels.AsSpan(k * size * size * 4));
                    });
                    readSeconds += clock.Elapsed.TotalSeconds;
                    queue.Add((start, pixels, count));
                }
            }
            finally { queue.CompleteAdding(); }
        });
        double encodeSeconds = 0;
        try
        {
            foreach (var (start, pixels, count) in queue.GetConsumingEnumerable())
            {
                var clock = Stopwatch.StartNew();
                using var scope = NewDisposeScope();
                var input = tensor(pixels, [count, size, size, 4]);
                if (stain is not null) input = stain.NormaliseBatch(input);
                var features = encoder.Embed(input).contiguous();
                var values = features.data<float>().ToArray();
                for (int k = 0; k < count; k++)
                    for (int j = 0; j < dim; j++)
                    {
                        float v = values[k * dim + j];
                        if (!float.IsFinite(v))
                            throw new HistoException($"{slide.Path}: patch {start + k} at ({coords.Coords[start + k, 0]}, "
                                + $"{coords.Coords[start + k, 1]}) gave a non-finite feature ({v}); check the slide region and the "
                                    + $"encoder weights");
                        result[start + k, j] = v;
                    }
                encodeSeconds += clock.Elapsed.TotalSeconds;
                onPatches?.Invoke(count);
            }
        }
        finally
        {
            // Drain so the reader finishes even when encoding failed.
            foreach (var _ in queue.GetConsumingEnumerable()) { }
            reader.Wait();
        }
        timings = new EmbeddingTimings(readSeconds, encodeSeconds, n);
        return result;
    }
}
