using PureHDF;
using PureHDF.VOL.Native;

namespace Histo.IO;

/// <summary>
/// One slide's patch features in the HDF5 layout CLAM and TRIDENT write: <c>features</c> (float32 [N, D])
/// and <c>coords</c> (int64 [N, 2], level-0 top-left x, y), row i of one describing row i of the other.
/// </summary>
public sealed record PatchFeatures(string SlideId, float[,] Features, long[,] Coords, string Encoder, int PatchSize, double TargetMpp,
    int PatchSizeLevel0 = 0, int PatchLevel = 0)
{
    /// <summary>Tiling settings the coordinates were made with (copied from the coords file), so prediction can tile alike.</summary>
    public int Overlap { get; init; }
    public double MinTissue { get; init; } = double.NaN;
    /// <summary>The encoder's weights file by its SHA-256 (null: built-in or random weights).</summary>
    public string? WeightsSha256 { get; init; }
    /// <summary>The precision the network ran in ("fp32", "bf16"); null when not recorded.</summary>
    public string? Precision { get; init; }
    /// <summary>The side the network saw patches at, and what was done to them before it (resize, crop, normalisation).</summary>
    public int InputSize { get; init; }
    public string? Transform { get; init; }

    /// <summary>The Histo version that wrote a file (the assembly's informational version).</summary>
    public static string HistoVersion { get; } = typeof(PatchFeatures).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";

    public int Count => Features.GetLength(0);
    public int Dim => Features.GetLength(1);

    public void Write(string path) => AtomicFile.Write(path, tmp =>
    {
        H5Dataset features = Count > 0 ? new H5Dataset(Features) : new H5Dataset<float[,]>(fileDims: [0, (ulong)Dim]);
        H5Dataset coords = Count > 0 ? new H5Dataset(Coords) : new H5Dataset<long[,]>(fileDims: [0, 2]);
        features.Attributes = new() { ["encoder"] = Encoder, ["feature_dim"] = (long)Dim, ["histo_version"] = HistoVersion };
        if (WeightsSha256 is not null) features.Attributes["weights_sha256"] = WeightsSha256;
        if (Precision is not null) features.Attributes["precision"] = Precision;
        if (InputSize > 0) features.Attributes["input_size"] = (long)InputSize;
        if (Transform is not null) features.Attributes["transform"] = Transform;
        coords.Attributes = new()
        {
            ["patch_size"] = (long)PatchSize, ["target_mpp"] = TargetMpp, ["name"] = SlideId,
            ["patch_size_level0"] = (long)PatchSizeLevel0, ["patch_level"] = (long)PatchLevel,
            ["overlap"] = (long)Overlap, ["min_tissue"] = MinTissue,
        };
        new H5File { ["features"] = features, ["coords"] = coords }.Write(tmp);
    });

    /// <summary>Reads a features file written by Histo, CLAM or TRIDENT (float16 or float64 features are converted).</summary>
    public static PatchFeatures Read(string path) => Open(path, (file, fds, dims) =>
        {
            int n = (int)dims[0], d = (int)dims[1];
            float[,] features = n == 0 ? new float[0, d] : fds.Type.Size switch
            {
                4 => fds.Read<float[,]>(),
                8 => Convert(fds.Read<double[,]>(), v => (float)v),
                2 => Convert(fds.Read<Half[,]>(), v => (float)v),
                _ => throw new HistoException($"{path}: 'features' has {fds.Type.Size}-byte elements; expected float16/32/64"),
            };
            long[,] coords = new long[n, 2];
            int patchSize = 0, patchSizeLevel0 = 0, patchLevel = 0;
            double targetMpp = double.NaN;
            if (file.LinkExists("coords"))
            {
                var cds = file.Dataset("coords");
                long LongAttr(string name) => cds.AttributeExists(name) ? cds.Attribute(name).Read<long>() : 0;
                patchSize = (int)LongAttr("patch_size");
                patchSizeLevel0 = (int)LongAttr("patch_size_level0");
                patchLevel = (int)LongAttr("patch_level");
                if (cds.AttributeExists("target_mpp")) targetMpp = cds.Attribute("target_mpp").Read<double>();
                if (cds.Space.Dimensions[0] != (ulong)n) throw new HistoException($"{path}: 'coords' has {cds.Space.Dimensions[0]} "
                    + $"rows but 'features' has {n}");
                if (n > 0) coords = cds.Type.Size == 8 ? cds.Read<long[,]>() : Convert(cds.Read<int[,]>(), v => (long)v);
            }
            string encoder = fds.AttributeExists("encoder") ? fds.Attribute("encoder").Read<string>() : "unknown";
            string slideId = Path.GetFileNameWithoutExtension(path);
            return new PatchFeatures(slideId, features, coords, encoder, patchSize, targetMpp, patchSizeLevel0, patchLevel);
        });

    /// <summary>
    /// The 'features' dataset alone, row-major, into the first N x D values of a buffer <paramref name="rent"/> gives for that
    /// many values (no coords, no [N, D] array): what training reads per bag, on a background thread (managed code only)
    /// into reused buffers, so reading a cohort allocates no garbage per bag.
    /// </summary>
    public static (float[] Buffer, int Rows, int Dim) ReadFeaturesInto(string path, Func<long, float[]> rent) => Open(path,
        (_, fds, dims) =>
        {
            int n = (int)dims[0], d = (int)dims[1];
            long count = (long)n * d;
            var buffer = rent(count);
            var into = buffer.AsMemory(0, (int)count);
            switch (fds.Type.Size)
            {
                case 4: if (count > 0) fds.Read(into); break;
                case 8: fds.Read<double[]>().Select(v => (float)v).ToArray().CopyTo(into); break;
                case 2: fds.Read<Half[]>().Select(v => (float)v).ToArray().CopyTo(into); break;
                default: throw new HistoException($"{path}: 'features' has {fds.Type.Size}-byte elements; expected float16/32/64");
            }
            return (buffer, n, d);
        });

    /// <summary>What made the file, without reading the features themselves (cheap for a whole cohort).</summary>
    public static FeatureProvenance ReadProvenance(string path) => Open(path, (file, fds, dims) =>
        {
            int patchSize = 0, overlap = 0;
            double targetMpp = double.NaN, minTissue = double.NaN;
            string? name = null;
            if (file.LinkExists("coords"))
            {
                var cds = file.Dataset("coords");
                if (cds.AttributeExists("patch_size")) patchSize = (int)cds.Attribute("patch_size").Read<long>();
                if (cds.AttributeExists("target_mpp")) targetMpp = cds.Attribute("target_mpp").Read<double>();
                if (cds.AttributeExists("name")) name = cds.Attribute("name").Read<string>();
                if (cds.AttributeExists("overlap")) overlap = (int)cds.Attribute("overlap").Read<long>();
                if (cds.AttributeExists("min_tissue")) minTissue = cds.Attribute("min_tissue").Read<double>();
            }
            string encoder = fds.AttributeExists("encoder") ? fds.Attribute("encoder").Read<string>() : "unknown";
            string? Text(string attribute) => fds.AttributeExists(attribute) ? fds.Attribute(attribute).Read<string>() : null;
            return new FeatureProvenance(encoder, (int)dims[1], patchSize, targetMpp)
            {
                Patches = (long)dims[0], SlideName = name, Overlap = overlap, MinTissue = minTissue,
                WeightsSha256 = Text("weights_sha256"), Precision = Text("precision"),
            };
        });

    /// <summary>
    /// Opens a features file and checks its 'features' dataset is [N, D] before <paramref name="read"/> looks inside; any
    /// failure is one line naming the file.
    /// </summary>
    static T Open<T>(string path, Func<NativeFile, IH5Dataset, ulong[], T> read)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: features file not found; run 'histo embed' first");
        try
        {
            using var file = H5File.OpenRead(path);
            if (!file.LinkExists("features")) throw new HistoException($"{path}: no 'features' dataset; expected CLAM/TRIDENT layout "
                + $"(features [N, D], coords [N, 2])");
            var fds = file.Dataset("features");
            var dims = fds.Space.Dimensions;
            if (dims.Length != 2) throw new HistoException($"{path}: 'features' has shape [{string.Join(", ", dims)}], expected [N, D]");
            return read(file, fds, dims);
        }
        catch (HistoException) { throw; }
        catch (Exception e)
        {
            throw new HistoException($"{path}: not a readable features file ({e.Message}); re-run 'histo embed' for this slide", e);
        }
    }

    /// <summary>The features file's NaN or infinite values are refused, naming the file and the first bad patch.</summary>
    public void CheckFinite(string path)
    {
        for (int i = 0; i < Count; i++)
            for (int j = 0; j < Dim; j++)
                if (!float.IsFinite(Features[i, j])) throw NonFinite(path, i, j, Features[i, j]);
    }

    /// <summary>The error for a NaN or infinite feature: the file, the patch and the fix (one wording for every reader).</summary>
    public static HistoException NonFinite(string path, long patch, long feature, float value) =>
        new($"{path}: feature {feature} of patch {patch} is {value}; re-run 'histo embed --overwrite' for "
            + $"{Path.GetFileNameWithoutExtension(path)}");

    static TOut[,] Convert<TIn, TOut>(TIn[,] source, Func<TIn, TOut> f)
    {
        var result = new TOut[source.GetLength(0), source.GetLength(1)];
        for (int i = 0; i < source.GetLength(0); i++)
            for (int j = 0; j < source.GetLength(1); j++) result[i, j] = f(source[i, j]);
        return result;
    }
}

/// <summary>
/// How a features file was made: encoder, feature size, patch size and resolution. Features made one way are not
/// comparable with features made another way, so every command that reads several files (train, predict, knn, probe,
/// heatmap) checks them against each other and against the run, and refuses a mix naming both. CLAM or TRIDENT files
/// without Histo's attributes have encoder "unknown", patch size 0 and mpp NaN, which match only themselves.
/// </summary>
public sealed record FeatureProvenance(string Encoder, int Dim, int PatchSize, double TargetMpp)
{
    public long Patches { get; init; }
    /// <summary>Tiling settings (not compared: they change which patches exist, not what a feature means).</summary>
    public int Overlap { get; init; }
    public double MinTissue { get; init; } = double.NaN;
    /// <summary>The slide the coordinates belong to (the coords 'name' attribute), when recorded.</summary>
    public string? SlideName { get; init; }
    /// <summary>The weights file's SHA-256 and the network's precision, when recorded (compared only when both files have them:
    /// CLAM's and TRIDENT's files do not).</summary>
    public string? WeightsSha256 { get; init; }
    public string? Precision { get; init; }

    /// <summary>The settings that differ, in words ("encoder resnet18 vs resnet18-imagenet").</summary>
    public List<string> Differences(FeatureProvenance other)
    {
        var result = new List<string>();
        if (Encoder != other.Encoder) result.Add($"encoder {Encoder} vs {other.Encoder}");
        if (Dim != other.Dim) result.Add($"{Dim}-d vs {other.Dim}-d features");
        if (WeightsSha256 is not null && other.WeightsSha256 is not null && WeightsSha256 != other.WeightsSha256)
            result.Add($"weights {WeightsSha256[..12]}... vs {other.WeightsSha256[..12]}...");
        if (Precision is not null && other.Precision is not null && Precision != other.Precision)
            result.Add($"precision {Precision} vs {other.Precision}");
        if (PatchSize != other.PatchSize) result.Add($"patch size {PatchSize} vs {other.PatchSize}");
        // 10%: tiling by magnification resolves "20x" to 0.49-0.52 mpp on different scanners, all the same resolution for a
        // model; a real change of resolution (0.5 vs 1.0 mpp) is a factor of two.
        if (!(TargetMpp.Equals(other.TargetMpp) || Math.Abs(TargetMpp - other.TargetMpp) <= 0.1 * Math.Max(TargetMpp,
            other.TargetMpp))) result.Add($"{TargetMpp:0.###} vs {other.TargetMpp:0.###} mpp");
        return result;
    }

    public override string ToString() => $"{Encoder}, {Dim}-d, {PatchSize} px at {TargetMpp:0.###} mpp";

    /// <summary>
    /// The provenance shared by all <paramref name="files"/>; when they differ, the files outside the largest group are
    /// named (so one odd file is blamed, not the cohort).
    /// </summary>
    public static FeatureProvenance Common(IReadOnlyList<string> files)
    {
        if (files.Count == 0) throw new HistoException("no features files");
        var read = files.Select(f => (File: f, Provenance: PatchFeatures.ReadProvenance(f))).ToList();
        var groups = read.GroupBy(r => r.Provenance with { Patches = 0, SlideName = null, Overlap = 0, MinTissue = double.NaN })
            .OrderByDescending(g => g.Count()).ToList();
        var majority = groups[0].Key;
        var odd = read.Select(r => (r.File, Differences: r.Provenance.Differences(majority))).Where(r => r.Differences.Count > 0).ToList();
        if (odd.Count == 0) return majority;
        throw new HistoException($"{odd[0].File}: made differently from the other {read.Count - odd.Count} features file(s) "
            + $"({string.Join(", ", odd[0].Differences)}){(odd.Count > 1 ? $"; {odd.Count - 1} more file(s) differ too" : "")}; "
            + "embed every slide with the same encoder and tiling, or remove the odd files");
    }

    /// <summary>Refuses <paramref name="file"/> when it was made otherwise than <paramref name="expected"/> (described by <paramref
    /// name="source"/>).</summary>
    public void CheckMatches(string file, FeatureProvenance expected, string source)
    {
        var differences = Differences(expected);
        if (differences.Count > 0)
            throw new HistoException($"{file}: features made otherwise than {source} ({string.Join(", ", differences)}); "
                + $"embed the slides as {source} was ({expected})");
    }
}
