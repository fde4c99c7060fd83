using PureHDF;

namespace Histo.IO;

/// <summary>
/// Patch coordinates of one slide in the HDF5 layout CLAM and TRIDENT use: a dataset <c>coords</c>
/// (int64 [N, 2], level-0 top-left x, y) whose attributes say how to read each patch.
/// </summary>
/// <param name="PatchSize">Patch side in pixels at the target resolution.</param>
/// <param name="PatchLevel">Pyramid level the patches are read from (then resized to PatchSize).</param>
/// <param name="PatchSizeLevel0">Patch side in level-0 pixels (0 in CLAM's files, where PatchSize applies at PatchLevel).</param>
/// <param name="TargetMpp">Microns per pixel of the patches.</param>
/// <param name="Downsample">Target resolution relative to level 0 (TargetMpp / Level0Mpp).</param>
public sealed record PatchCoordinates(string SlideId, long[,] Coords, int PatchSize, int PatchLevel, int PatchSizeLevel0,
    double TargetMpp, double Downsample, double Level0Mpp, int Overlap, double MinTissue)
{
    public int Count => Coords.GetLength(0);

    public void Write(string path) => AtomicFile.Write(path, tmp =>
    {
        // A slide without tissue still gets a file (an empty [0, 2] dataset), so a rerun knows it is done.
        H5Dataset dataset = Count > 0 ? new H5Dataset(Coords) : new H5Dataset<long[,]>(fileDims: [0, 2]);
        dataset.Attributes = new()
            {
                ["patch_size"] = (long)PatchSize,
                ["patch_level"] = (long)PatchLevel,
                ["patch_size_level0"] = (long)PatchSizeLevel0,
                ["target_mpp"] = TargetMpp,
                ["downsample"] = Downsample,
                ["level0_mpp"] = Level0Mpp,
                ["overlap"] = (long)Overlap,
                ["min_tissue"] = MinTissue,
                ["name"] = SlideId,
            };
        new H5File { ["coords"] = dataset }.Write(tmp);
    });

    /// <summary>Reads a coordinates file written by Histo, CLAM or TRIDENT (attributes Histo does not find get defaults).</summary>
    public static PatchCoordinates Read(string path)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: coordinates file not found; run 'histo tile' first");
        try
        {
            using var file = H5File.OpenRead(path);
            var dataset = file.Dataset("coords");
            var dims = dataset.Space.Dimensions;
            if (dims.Length != 2 || dims[1] != 2) throw new HistoException($"{path}: 'coords' has shape [{string.Join(", ", dims)}], expected [N, 2]");
            var coords = dims[0] == 0 ? new long[0, 2] : dataset.Read<long[,]>();
            T Attr<T>(string name, T fallback) => dataset.AttributeExists(name) ? dataset.Attribute(name).Read<T>() : fallback;
            string slideId = dataset.AttributeExists("name") ? dataset.Attribute("name").Read<string>() : Path.GetFileNameWithoutExtension(path);
            return new PatchCoordinates(slideId, coords, (int)Attr("patch_size", 256L), (int)Attr("patch_level", 0L),
                (int)Attr("patch_size_level0", 0L), Attr("target_mpp", double.NaN), Attr("downsample", 1.0),
                Attr("level0_mpp", double.NaN), (int)Attr("overlap", 0L), Attr("min_tissue", double.NaN));
        }
        catch (HistoException) { throw; }
        catch (Exception e)
        {
            throw new HistoException($"{path}: not a readable coordinates file ({e.Message}); delete it and tile the slide again", e);
        }
    }
}
