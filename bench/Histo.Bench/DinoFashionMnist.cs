using System.Diagnostics;
using System.IO.Compression;
using Histo.Evaluation;
using Histo.Imaging;
using Histo.Models;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Does DINO learn? A short DINO run on Fashion-MNIST (Debian's dataset-fashion-mnist) with a 4-block ViT-Tiny at
/// 32 px (4 px patches, vit-micro-32), 2 local crops and a sharper teacher (0.02, the DINO authors' advice against
/// collapse); kNN accuracy (cosine, k = 20, weighted) of the teacher backbone (and of the student) against the same
/// network at random initialisation, on held-out test images. Every setting can be changed from the command line;
/// tools/reference/dino_fmnist_reference.py runs the same recipe in PyTorch.
/// </summary>
static class DinoFashionMnist
{
    const string DataDir = "/usr/share/datasets/fashion-mnist";

    /// <summary>--images N (training images; default 1024 quick, 2048), --epochs E (default 2 quick, 6), and the DINO settings below.</summary>
    public static int Run(BenchArgs args)
    {
        BenchEnvironment.EnsureDebianPackages("dataset-fashion-mnist");
        bool quick = args.Quick;
        int trainCount = (int)args.Number("--images", quick ? 1024 : 2048), testCount = quick ? 1000 : 2000, epochs = (int)args.Number("--epochs", quick ? 2 : 6);
        var (trainImages, trainLabels) = ReadIdx("train", trainCount);
        var (testImages, testLabels) = ReadIdx("t10k", testCount);
        string dir = Path.Combine(BenchEnvironment.WorkDir, "fashion-mnist");
        var files = new List<string>();
        Directory.CreateDirectory(Path.Combine(dir, "png"));
        for (int i = 0; i < trainCount; i++)
        {
            string path = Path.Combine(dir, "png", $"{i:D5}.png");
            if (!File.Exists(path)) ToImage(trainImages[i]).Save(path);
            files.Add(path);
        }
        var options = new DinoOptions
        {
            Arch = args.String("--arch") ?? "vit-micro-32", Epochs = epochs, BatchSize = (int)args.Number("--batch", 64), OutDim = (int)args.Number("--out-dim", 1024),
            BaseLearningRate = args.Number("--lr", 2e-3), WarmupEpochs = (int)args.Number("--warmup", 1), TeacherMomentum = args.Number("--momentum", 0.996),
            TeacherTemperature = args.Number("--teacher-temp", 0.02), WarmupTeacherTemperature = args.Number("--teacher-temp", 0.02), NormLastLayer = args.Number("--norm-last", 1) == 1,
            HeadHidden = (int)args.Number("--hidden", 2048), HeadBottleneck = (int)args.Number("--bottleneck", 256), WarmupTeacherTemperatureEpochs = 0, FreezeLastLayerEpochs = (int)args.Number("--freeze", 1),
            Augmentation = new DinoAugmentation { GlobalSize = 32, LocalSize = 16, LocalCrops = (int)args.Number("--local", 2), LocalScale = (args.Number("--local-scale-min", 0.2), args.Number("--local-scale-max", 0.5)),
                GlobalScale = (args.Number("--global-scale-min", 0.4), 1.0), VerticalFlip = false, StainJitter = 0,
                ColourJitterProbability = args.Number("--jitter", 0.8), GrayscaleProbability = args.Number("--grayscale", 0.2) },
        };
        Console.WriteLine(options);
        var grid = options.Augmentation.Grid(RgbaImage.Load(files[0]), seed: 1, rows: 6);
        grid.Resize(grid.Width * 4, grid.Height * 4).Save(Path.Combine(dir, "views.png"));
        if (args.String("--views-only") is not null) return 0;
        string run = Path.Combine(dir, $"run-{Guid.NewGuid():N}");
        bool recalibrate = args.String("--recalibrate-bn") is not null;
        double Accuracy(PatchEncoder encoder)
        {
            if (recalibrate) RecalibrateBatchNorm(encoder, trainImages);
            var train = Embed(encoder, trainImages);
            var test = Embed(encoder, testImages);
            using var knn = new KnnClassifier(train, trainLabels);
            var predicted = knn.Predict(test);
            return predicted.Zip(testLabels).Count(p => p.First == p.Second) / (double)testLabels.Length;
        }
        // The baseline is the very network DINO starts from (the student's backbone is the first thing built after
        // manual_seed(seed)), embedding at the size DINO trains at, as the teacher will.
        int size = options.Augmentation.GlobalSize;
        manual_seed(options.Seed);
        double before;
        using (var random = EncoderRegistry.Create(options.Arch, inputSize: size)) before = Accuracy(random);
        Console.WriteLine($"  random initialisation: kNN {before:0.000}");

        var clock = Stopwatch.StartNew();
        var training = TimeSpan.Zero;
        var teacherByEpoch = new List<double>();
        var losses = DinoTraining.Run(files, options, run, p =>
        {
            if (p.Iteration == p.Iterations || p.Iteration % 8 == 0)
                Console.WriteLine($"  epoch {p.Epoch} it {p.Iteration}: loss {p.Loss:0.000}, teacher entropy {p.TeacherEntropy:0.00} (batch mean {p.TeacherMarginalEntropy:0.00}), lr {p.LearningRate:0.0e0}, {clock.Elapsed.TotalMinutes:0.0} min");
        }, epoch =>
        {
            // Evaluation time is not training time.
            training += clock.Elapsed;
            using var teacher = EncoderRegistry.Create(run);
            teacherByEpoch.Add(Accuracy(teacher));
            string student = "";
            if (args.String("--student") is not null)
            {
                // The student too, to see whether the EMA teacher lags behind it.
                using var studentEncoder = EncoderRegistry.Create(options.Arch, inputSize: size);
                var saved = Checkpoint.Read(Path.Combine(run, "checkpoint.safetensors"));
                using (no_grad())
                    foreach (var (name, t) in studentEncoder.Network.state_dict()) t.copy_(saved["student.backbone." + name]);
                foreach (var t in saved.Values) t.Dispose();
                student = $", student {Accuracy(studentEncoder):0.000}";
            }
            Console.WriteLine($"  after epoch {epoch}: kNN teacher {teacherByEpoch[^1]:0.000}{student} (random {before:0.000})");
            clock.Restart();
        });
        double minutes = (training + clock.Elapsed).TotalMinutes;
        Console.WriteLine($"DINO on Fashion-MNIST: {trainCount} training images, {options.Arch}, {epochs} epochs in {minutes:0.0} min of training (loss {string.Join(" -> ", losses.Select(l => l.ToString("0.00")))})");
        Console.WriteLine($"  kNN accuracy (cosine, k=20, weighted) on {testCount} test images, features of the {trainCount} training images:");
        Console.WriteLine($"    random initialisation  {before:0.000}");
        Console.WriteLine($"    DINO teacher           {teacherByEpoch[^1]:0.000}  (by epoch: {string.Join(", ", teacherByEpoch.Select(a => a.ToString("0.000")))})");
        return 0;
    }

    /// <summary>
    /// Batch-norm running statistics recomputed on the (un-augmented) training images: a teacher's come from augmented
    /// crops, a random network's are the initial 0/1; both are then measured with statistics of the data they embed.
    /// </summary>
    static void RecalibrateBatchNorm(PatchEncoder encoder, byte[][] images)
    {
        var norms = encoder.Network.modules().OfType<TorchSharp.Modules.BatchNorm2d>().ToList();
        if (norms.Count == 0) return;
        using (no_grad())
        {
            foreach (var bn in norms) { bn.reset_running_stats(); bn.momentum = null; } // cumulative average over all batches
            encoder.Network.train();
            for (int start = 0; start + 256 <= images.Length; start += 256)
            {
                using var batch = Batch(images, start, 256);
                using var input = encoder.Preprocess(batch);
                using var _ = encoder.Network.forward(input);
            }
            encoder.Network.eval();
        }
    }

    static float[,] Embed(PatchEncoder encoder, byte[][] images)
    {
        var result = new float[images.Length, encoder.FeatureDim];
        for (int start = 0; start < images.Length; start += 256)
        {
            int count = Math.Min(256, images.Length - start);
            using var batch = Batch(images, start, count);
            using var features = encoder.Embed(batch);
            var flat = features.data<float>().ToArray();
            for (int i = 0; i < count; i++) for (int j = 0; j < encoder.FeatureDim; j++) result[start + i, j] = flat[i * encoder.FeatureDim + j];
        }
        return result;
    }

    /// <summary>Images start .. start + count - 1 as RGBA bytes [count, 32, 32, 4].</summary>
    static Tensor Batch(byte[][] images, int start, int count)
    {
        var pixels = new byte[count * 32 * 32 * 4];
        for (int i = 0; i < count; i++) ToImage(images[start + i]).Pixels.CopyTo(pixels, i * 32 * 32 * 4);
        return tensor(pixels, [count, 32, 32, 4]);
    }

    /// <summary>A 28 x 28 grey image padded to 32 x 32 RGB (the background is black, as in the data set).</summary>
    static RgbaImage ToImage(byte[] pixels)
    {
        var image = RgbaImage.Filled(32, 32, 0, 0, 0);
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++)
            {
                int o = ((y + 2) * 32 + x + 2) * 4;
                image.Pixels[o] = image.Pixels[o + 1] = image.Pixels[o + 2] = pixels[y * 28 + x];
            }
        return image;
    }

    static (byte[][] Images, int[] Labels) ReadIdx(string prefix, int count)
    {
        byte[] Read(string name)
        {
            using var gz = new GZipStream(File.OpenRead(Path.Combine(DataDir, name)), CompressionMode.Decompress);
            using var ms = new MemoryStream();
            gz.CopyTo(ms);
            return ms.ToArray();
        }
        var images = Read($"{prefix}-images-idx3-ubyte.gz");
        var labels = Read($"{prefix}-labels-idx1-ubyte.gz");
        return (Enumerable.Range(0, count).Select(i => images.AsSpan(16 + i * 784, 784).ToArray()).ToArray(),
                Enumerable.Range(0, count).Select(i => (int)labels[8 + i]).ToArray());
    }
}
