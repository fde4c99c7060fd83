using System.Text.Json;
using Histo.Distillation;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// Knowledge distillation's losses against tools/reference/distill_reference.py (PyTorch autograd, float64, written from
/// RepDistiller's DistillKL and Zagoruyko and Komodakis's at_loss): loss and gradient, 1e-6; then histo distill end to end.
/// </summary>
public class DistillationTests
{
    static JsonDocument Golden() => JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference",
        "golden", "distill-golden.json")));

    static Tensor Matrix(JsonElement rows) => tensor(rows.EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetDouble()))
        .ToArray(), [rows.GetArrayLength(), rows[0].GetArrayLength()]);

    static Tensor Flat(JsonElement values, JsonElement shape) => tensor(values.EnumerateArray().Select(v => v.GetDouble()).ToArray(),
        shape.EnumerateArray().Select(v => v.GetInt64()).ToArray());

    static void Close(Tensor actual, Tensor expected, string what)
    {
        double worst = actual.sub(expected).abs().max().item<double>();
        Assert.True(worst < 1e-6, $"{what}: largest difference {worst}");
    }

    [Fact]
    public void SoftTargetLossAndGradientMatchPyTorch()
    {
        using var doc = Golden();
        foreach (var c in doc.RootElement.GetProperty("kd").EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var student = Matrix(c.GetProperty("student")).requires_grad_();
            var teacher = Matrix(c.GetProperty("teacher"));
            var labelsJson = c.GetProperty("labels");
            Tensor? labels = labelsJson.ValueKind == JsonValueKind.Null ? null
                : tensor(labelsJson.EnumerateArray().Select(v => v.GetInt64()).ToArray());
            var loss = SoftTargets.Loss(student, teacher, labels, c.GetProperty("alpha").GetDouble(),
                c.GetProperty("temperature").GetDouble());
            loss.backward();
            Assert.Equal(c.GetProperty("loss").GetDouble(), loss.item<double>(), 6);
            Close(student.grad!, Matrix(c.GetProperty("grad_student")), "KD gradient");
        }
    }

    [Fact]
    public void AttentionTransferLossGradientAndTeacherMapsMatchPyTorch()
    {
        using var doc = Golden();
        foreach (var c in doc.RootElement.GetProperty("at").EnumerateArray())
        {
            using var scope = NewDisposeScope();
            var studentShapes = c.GetProperty("student_shapes").EnumerateArray().ToList();
            var teacherShapes = c.GetProperty("teacher_shapes").EnumerateArray().ToList();
            var students = c.GetProperty("students").EnumerateArray().Select((s, j) => Flat(s, studentShapes[j]).requires_grad_()).ToList();
            var teachers = c.GetProperty("teachers").EnumerateArray().Select((t, j) => Flat(t, teacherShapes[j])).ToList();
            // The teacher's maps at the common size, as a cache holds them.
            var maps = teachers.Select((t, j) => AttentionTransfer.Map(t, AttentionTransfer.CommonSize(students[j].shape[2], t.shape[2])))
                .ToList();
            var expectedMaps = c.GetProperty("teacher_maps").EnumerateArray().Select(Matrix).ToList();
            for (int j = 0; j < maps.Count; j++) Close(maps[j], expectedMaps[j], $"teacher map {j}");
            var loss = AttentionTransfer.Loss(students, maps, c.GetProperty("beta").GetDouble());
            loss.backward();
            Assert.Equal(c.GetProperty("loss").GetDouble(), loss.item<double>(), 6);
            var grads = c.GetProperty("grad_students").EnumerateArray().ToList();
            for (int j = 0; j < students.Count; j++) Close(students[j].grad!, Flat(grads[j], studentShapes[j]), $"AT gradient {j}");
        }
    }
}
